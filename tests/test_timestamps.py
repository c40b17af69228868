"""Issue 18, part 6: one timestamp grammar, the same on every Python (3.10 to 3.13).

``datetime.fromisoformat`` reads nanoseconds, ``…00.12Z`` and the basic format on 3.11 and not
on 3.10: the same record kept its ``timestamp`` on one interpreter and lost it on another.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from streambridge._util import parse_iso_datetime

UTC = timezone.utc
NOON = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)

ACCEPTED = [
    ("2024-05-01T12:00:00Z", NOON),
    ("2024-05-01T12:00:00.123456789Z", NOON.replace(microsecond=123456)),  # Go, Java: ns
    ("2024-05-01T12:00:00.12Z", NOON.replace(microsecond=120000)),
    ("2024-05-01T12:00:00.1Z", NOON.replace(microsecond=100000)),
    ("2024-05-01T12:00:00,5Z", NOON.replace(microsecond=500000)),
    ("20240501T120000Z", NOON),
    ("20240501T1200Z", NOON),
    ("2024-05-01 12:00:00", NOON),
    ("2024-05-01t12:00:00z", NOON),
    ("2024-05-01T12:00", NOON),
    ("2024-05-01T12", NOON),
    ("2024-05-01", NOON.replace(hour=0)),
    ("20240501", NOON.replace(hour=0)),
    ("2024-05-01T14:00:00+02:00", NOON),
    ("2024-05-01T14:00:00+0200", NOON),
    ("2024-05-01T14:00:00+02", NOON),
    ("2024-05-01T07:30:00-04:30", NOON),
    ("  2024-05-01T12:00:00Z\n", NOON),
    ("2024-02-29T00:00:00Z", datetime(2024, 2, 29, tzinfo=UTC)),
]

REFUSED = [
    "",
    "yesterday",
    "2024-05-01T12:00:00ZZ",
    "2024-13-01T00:00:00Z",  # no 13th month
    "2023-02-29T00:00:00Z",  # not a leap year
    "2024-05-01T25:00:00Z",
    "2024-05-01T12:60:00Z",
    "2024-05-01T12:00:00+24:00",
    "2024-05-01T12:00:00+02:75",
    "2024-0501T12:00:00Z",  # dashes in one half only
    "2024-05-01T1200:00Z",
    "2024-05-01T12:00:00.Z",
    "１２３４-05-01",  # digits of another script  # noqa: RUF001
    "2024-W18-3",  # week dates: not ours
    "1714564800",  # epoch seconds are numbers, not text
]


@pytest.mark.parametrize(("text", "expected"), ACCEPTED)
def test_accepted(text: str, expected: datetime) -> None:
    """Each form is read, to the microsecond, with its offset."""
    parsed = parse_iso_datetime(text)
    assert parsed == expected
    assert parsed is not None
    assert parsed.tzinfo is not None


@pytest.mark.parametrize("text", REFUSED)
def test_refused(text: str) -> None:
    """Anything else is not a timestamp (the record is then skipped with a reason)."""
    assert parse_iso_datetime(text) is None


def test_an_offset_is_kept() -> None:
    """The offset given is the datetime's (not converted)."""
    parsed = parse_iso_datetime("2024-05-01T14:00:00+02:00")
    assert parsed is not None
    assert parsed.utcoffset() == timedelta(hours=2)
