"""Small pure helpers shared by the core modules (no I/O, no boto3)."""

from __future__ import annotations

from datetime import datetime, timezone

__all__ = ["json_kind", "parse_iso_datetime"]


_KINDS: tuple[tuple[type | tuple[type, ...], str], ...] = (
    (type(None), "null"),
    (bool, "a boolean"),  # before int: a bool is an int
    ((int, float), "a number"),
    (str, "a string"),
    ((list, tuple), "an array"),
    (dict, "an object"),
)


def json_kind(value: object) -> str:
    """Name a JSON value's kind for messages, without echoing (possibly huge) content."""
    for types, name in _KINDS:
        if isinstance(value, types):
            return name
    return f"a {type(value).__name__}"


def parse_iso_datetime(text: str) -> datetime | None:
    """Parse ISO 8601 text (a trailing ``Z`` allowed) as an aware datetime; no offset means UTC.

    Returns None when the text is not ISO 8601.
    """
    text = text.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
