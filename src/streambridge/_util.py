"""Small pure helpers of the shared base (no I/O, no boto3)."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from importlib import import_module
from typing import Any

from streambridge.errors import DeadLetterError

__all__ = ["lazy_exports", "parse_iso_datetime"]


#: The timestamps we read: RFC 3339, and the ISO 8601 forms producers write besides — the
#: basic format (``20240501T120000Z``), a space or a ``t`` between date and time, minutes or
#: seconds left out, fractions of any length (nanoseconds, as Go and Java write them: cut to
#: microseconds), a comma before them, offsets as ``Z``, ``±HH``, ``±HHMM`` or ``±HH:MM``, a
#: date alone (midnight). One grammar, ours, so that every Python reads the same text alike
#: (``datetime.fromisoformat`` accepts more on 3.11 than on 3.10).
_ISO = re.compile(
    r"(?P<year>\d{4})(?P<dash>-?)(?P<month>\d{2})(?P=dash)(?P<day>\d{2})"
    r"(?:[Tt ](?P<hour>\d{2})"
    r"(?:(?P<colon>:?)(?P<minute>\d{2})(?:(?P=colon)(?P<second>\d{2})(?:[.,](?P<fraction>\d+))?)?)?"
    r"(?P<offset>[Zz]|[+-]\d{2}(?::?\d{2})?)?)?",
    re.ASCII,
)


def parse_iso_datetime(text: str) -> datetime | None:
    """Parse a timestamp (:data:`_ISO`'s grammar) as an aware datetime; no offset means UTC.

    Returns None when the text is not such a timestamp (or names no real date or time).
    """
    match = _ISO.fullmatch(text.strip())
    if match is None:
        return None
    parts = match.groupdict()
    fraction = (parts["fraction"] or "")[:6].ljust(6, "0")
    try:
        zone = _offset(parts["offset"])
        return datetime(
            int(parts["year"]),
            int(parts["month"]),
            int(parts["day"]),
            int(parts["hour"] or 0),
            int(parts["minute"] or 0),
            int(parts["second"] or 0),
            int(fraction),
            tzinfo=zone,
        )
    except ValueError:
        return None


def _offset(text: str | None) -> timezone:
    """``Z``, ``+02``, ``+0200`` or ``+02:00`` as a timezone (none: UTC)."""
    if text is None or text in ("Z", "z"):
        return timezone.utc
    digits = text[1:].replace(":", "")
    minutes = int(digits[:2]) * 60 + int(digits[2:4] or 0)
    if minutes >= 24 * 60 or int(digits[2:4] or 0) >= 60:  # noqa: PLR2004
        raise ValueError(text)
    return timezone(timedelta(minutes=minutes if text[0] == "+" else -minutes))


def lazy_exports(
    package: str, namespace: dict[str, Any], lazy: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """A package's ``__getattr__`` and ``__dir__`` that import ``lazy`` names on first use.

    The shells import botocore; a package that exports them this way can be imported (for its
    pure modules, its settings, its results) without pulling in boto3 or botocore.

    Args:
        package: The package's ``__name__``, for the error message.
        namespace: The package's ``globals()``; a name is stored there once imported.
        lazy: Name -> the module that defines it.
    """

    def __getattr__(name: str) -> Any:  # noqa: N807 - it is a module's __getattr__
        module = lazy.get(name)
        if module is None:
            msg = f"module {package!r} has no attribute {name!r}"
            raise AttributeError(msg)
        value = getattr(import_module(module), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:  # noqa: N807 - it is a module's __dir__
        return sorted(set(namespace) | set(lazy))

    return __getattr__, __dir__


def stop_function(stop: threading.Event | Callable[[], bool] | None) -> Callable[[], bool]:
    """``stop`` (an event, a function, or None: never) as a function that says "stop now"."""
    if stop is None:
        return lambda: False
    if isinstance(stop, threading.Event):
        return stop.is_set
    return stop


def call_safely(
    callback: Callable[[Any], object] | None, item: object, logger: Any, message: str
) -> None:
    """``callback(item)`` when there is one; an exception it raises is logged, never raised.

    For user callbacks (``on_skip``, ``on_failure``): a broken one must not lose the records
    that come after. The exception is :class:`~streambridge.errors.DeadLetterError`, raised by
    streambridge's own dead-letter targets: a record whose dead letter was not written is not
    handed back, so the caller must not move past it.
    """
    if callback is None:
        return
    try:
        callback(item)
    except DeadLetterError:
        raise
    except Exception:
        logger.exception(message)
