"""Small pure helpers of the shared base (no I/O, no boto3)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from importlib import import_module
from typing import Any

from streambridge.errors import DeadLetterError

__all__ = ["lazy_exports", "parse_iso_datetime"]


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
