"""Nested-key extraction and the ``additionalPropertyMappings`` syntax of PostHog's Kinesis app.

Pure: no I/O. :func:`extract` follows a dotted path through decoded JSON: each segment is a
key of an object, or — when the value there is an array and the segment is a decimal number —
an index into it. A missing key, an index out of range, or a step into a string, number, boolean
or null raises :class:`KeyError` (so ``extract`` is total over JSON values: it returns a value or
raises ``KeyError``, nothing else). Segments are taken literally: no trimming, keys are
case-sensitive, an empty segment (``a..b``, a trailing dot) is the key ``""``.

Differences from the app (``docs/migrating-from-posthog.md``): strings are not indexed
(``name.0`` and ``name.length`` are missing), and values of every JSON type are returned — the
app treats ``""``, ``0``, ``false`` and ``null`` as missing.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any

import attrs

from streambridge.errors import ConfigurationError

__all__ = [
    "MISSING",
    "PropertyMapping",
    "extract",
    "format_property_mappings",
    "getter",
    "lookup",
    "parse_path",
    "parse_property_mappings",
]


def parse_path(path: str) -> tuple[str, ...]:
    """Split a dotted path into its segments (literally: no trimming, empty segments kept)."""
    return tuple(path.split("."))


class _Missing:
    """The type of :data:`MISSING`."""

    def __repr__(self) -> str:
        return "MISSING"


#: Returned by :func:`lookup` when the path leads nowhere.
MISSING: Any = _Missing()


def lookup(obj: Any, path: tuple[str, ...], default: Any = MISSING) -> Any:
    """Like :func:`extract` with parsed segments, returning ``default`` instead of raising."""
    value = obj
    for segment in path:
        if isinstance(value, dict):
            value = value.get(segment, MISSING)
            if value is MISSING:
                return default
        elif isinstance(value, list) and segment.isdecimal() and segment.isascii():
            index = int(segment)
            if index >= len(value):
                return default
            value = value[index]
        else:
            return default
    return value


def getter(path: tuple[str, ...]) -> Callable[[Any], Any]:
    """``lambda obj: lookup(obj, path)``, made once for a path and faster for objects.

    A path with no index-like segment (``0``, ``12``) walks objects only — unrolled for one to
    three segments of plain dicts, as decoded JSON has — and any other path uses
    :func:`lookup` itself.
    """
    if any(segment.isdecimal() and segment.isascii() for segment in path):
        return functools.partial(lookup, path=path)

    def walk(obj: Any) -> Any:
        for segment in path:
            if not isinstance(obj, dict):
                return MISSING
            obj = obj.get(segment, MISSING)
            if obj is MISSING:
                return MISSING
        return obj

    if len(path) == 1:
        (a,) = path
        return lambda obj: obj.get(a, MISSING) if type(obj) is dict else walk(obj)
    if len(path) == 2:  # noqa: PLR2004
        a, b = path

        def walk2(obj: Any) -> Any:
            if type(obj) is dict:
                x = obj.get(a)
                if type(x) is dict:
                    return x.get(b, MISSING)
            return walk(obj)

        return walk2
    if len(path) == 3:  # noqa: PLR2004
        a, b, c = path

        def walk3(obj: Any) -> Any:
            if type(obj) is dict:
                x = obj.get(a)
                if type(x) is dict:
                    y = x.get(b)
                    if type(y) is dict:
                        return y.get(c, MISSING)
            return walk(obj)

        return walk3
    return walk


def extract(obj: Any, path: str | tuple[str, ...]) -> Any:
    """Follow ``path`` through ``obj`` and return the value there.

    Args:
        obj: Decoded JSON (dicts, lists, scalars).
        path: A dotted path (``"properties.eventName"``, ``"items.0.sku"``) or its segments.

    Returns:
        The value at the path; any JSON value, ``None`` included.

    Raises:
        KeyError: The path does not lead to a value; the message names the missing segment.
    """
    segments = parse_path(path) if isinstance(path, str) else path
    value = lookup(obj, segments)
    if value is MISSING:
        raise KeyError(".".join(segments))
    return value


@attrs.frozen
class PropertyMapping:
    """One ``source.path:target`` entry of ``additionalPropertyMappings``.

    Attributes:
        source: The dotted path into the record.
        target: The PostHog property name (flat: dots are kept literally).
    """

    source: str
    target: str
    #: The source path's segments, split once.
    path: tuple[str, ...] = attrs.field(
        init=False,
        eq=False,
        repr=False,
        default=attrs.Factory(lambda self: parse_path(self.source), takes_self=True),
    )
    #: :func:`getter` of the path: the value there, or :data:`MISSING`.
    get: Callable[[Any], Any] = attrs.field(
        init=False,
        eq=False,
        repr=False,
        default=attrs.Factory(lambda self: getter(self.path), takes_self=True),
    )

    def __str__(self) -> str:
        """The entry as it is written in the configuration."""
        return f"{self.source}:{self.target}"


def parse_property_mappings(text: object) -> tuple[PropertyMapping, ...]:
    """Parse ``additionalPropertyMappings``: ``source.path:target,other:target2``.

    Whitespace around entries and around ``:`` is trimmed; empty entries (a trailing comma,
    ``,,``) are ignored; ``None`` or ``""`` means no mappings.

    Raises:
        ConfigurationError: An entry has no ``:``, more than one, or an empty side; the
            message names the entry.
    """
    if text is None:
        return ()
    if not isinstance(text, str):
        msg = f"additionalPropertyMappings must be text, got {type(text).__name__}"
        raise ConfigurationError(msg)
    mappings = []
    for raw in text.split(","):
        entry = raw.strip()
        if not entry:
            continue
        parts = entry.split(":")
        if len(parts) != 2:  # noqa: PLR2004 - source and target
            what = "has no ':'" if len(parts) == 1 else "has more than one ':'"
            msg = f"property mapping {entry!r} {what}; write it as 'source.path:target'"
            raise ConfigurationError(msg)
        source, target = (part.strip() for part in parts)
        if not source or not target:
            side = "source" if not source else "target"
            msg = f"property mapping {entry!r} has an empty {side}; write 'source.path:target'"
            raise ConfigurationError(msg)
        mappings.append(PropertyMapping(source, target))
    return tuple(mappings)


def format_property_mappings(mappings: Iterable[PropertyMapping]) -> str:
    """Write mappings back in the ``additionalPropertyMappings`` syntax."""
    return ",".join(str(mapping) for mapping in mappings)
