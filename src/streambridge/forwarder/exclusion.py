"""Metadata Field Exclusion: remove chosen fields from a batch.

mParticle documents two choices, "Device Name" and "IP Address"; they are aliases of
``device_info.device`` and the top-level ``ip``. Any dotted path into the batch's other
top-level objects is accepted too (``device_info.ios_advertising_id``,
``application_info.package``, ``user_attributes.$age``, ``source_info``); a one-segment path
removes a top-level key. Paths into ``events`` are refused: event content is governed by the
event settings, not by metadata exclusion.

Pure: no I/O, and the input is never mutated. The result shares unchanged sub-objects with the
input (only the dicts along a removed path are copied), so treat both as read-only.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

from streambridge.errors import ConfigurationError

__all__ = [
    "ALIASES",
    "TOP_LEVEL_KEYS",
    "exclude_fields",
    "exclude_paths",
    "holds",
    "parse_selectors",
]

#: mParticle's documented labels, matched ignoring case and spacing.
ALIASES: Mapping[str, tuple[str, ...]] = {
    "device name": ("device_info", "device"),
    "ip address": ("ip",),
}

#: The batch's top-level keys (mParticle's batch schema): a one-segment selector names one.
TOP_LEVEL_KEYS = frozenset(
    {
        "api_key", "api_keys", "application_info", "attribution_info", "batch_id",
        "consent_state", "context", "deleted_user_attributes", "device_info", "environment",
        "integration_attributes", "ip", "job_id", "message_id", "message_type", "mp_deviceid",
        "mpid", "origin_mpid", "partner_identities", "partner_identity", "schema_version",
        "sdk_version", "source_info", "source_request_id", "timestamp_unixtime_ms",
        "unique_id", "user_attributes", "user_identities",
    }
)  # fmt: skip
_LABELS = ("Device Name", "IP Address")

Path = tuple[str, ...]


def _unknown(selector: str, why: str) -> ConfigurationError:
    """The error for a selector that names nothing, with the closest label or key."""
    candidates = {c.casefold(): c for c in (*_LABELS, *sorted(TOP_LEVEL_KEYS))}
    typed = " ".join(selector.split()).casefold()
    close = difflib.get_close_matches(typed, list(candidates), n=1, cutoff=0.6)
    hint = f"; did you mean {candidates[close[0]]!r}?" if close else ""
    return ConfigurationError(
        f"metadata field exclusion {selector!r} {why}{hint} (the labels are 'Device Name' and "
        f"'IP Address'; a dotted path such as 'device_info.ios_advertising_id' names any "
        f"other field): nothing would be excluded"
    )


def _parse_one(selector: str) -> Path:
    label = " ".join(selector.split()).casefold()
    if label in ALIASES:
        return ALIASES[label]
    text = selector.strip()
    if ";" in text or "|" in text:
        msg = f"metadata field exclusion {selector!r} holds several fields: separate them with ','"
        raise ConfigurationError(msg)
    if "." not in text and text not in TOP_LEVEL_KEYS:
        raise _unknown(selector, "is neither a label nor a top-level field of a batch")
    segments = tuple(text.split("."))
    if not text or any(not s.strip() or s != s.strip() for s in segments):
        raise ConfigurationError(
            f"metadata field exclusion {selector!r} is not a field: use 'Device Name', "
            f"'IP Address' or a dotted path such as 'device_info.ios_advertising_id'"
        )
    if segments[0] == "events":
        raise ConfigurationError(
            f"metadata field exclusion {selector!r} points into events; exclusion applies to "
            f"batch metadata only (use the Send/Include event settings for events)"
        )
    if segments[0] not in TOP_LEVEL_KEYS:  # 'devce_info.ios_advertising_id': nothing removed
        close = difflib.get_close_matches(segments[0], sorted(TOP_LEVEL_KEYS), n=1, cutoff=0.6)
        hint = f"; did you mean {'.'.join((close[0], *segments[1:]))!r}?" if close else ""
        raise ConfigurationError(
            f"metadata field exclusion {selector!r} starts with {segments[0]!r}, which is not "
            f"a top-level object of a batch{hint} (nothing would be excluded)"
        )
    return segments


@lru_cache(maxsize=256)
def _parse_cached(selectors: tuple[str, ...]) -> tuple[Path, ...]:
    paths: list[Path] = []
    for selector in selectors:
        path = _parse_one(selector)
        if path not in paths:
            paths.append(path)
    return tuple(paths)


def parse_selectors(selectors: Iterable[str]) -> tuple[Path, ...]:
    """Turn selectors (aliases or dotted paths) into key paths, without duplicates.

    Args:
        selectors: ``"Device Name"``, ``"IP Address"`` or dotted paths.

    Returns:
        One tuple of keys per distinct field, in first-seen order.

    Raises:
        ConfigurationError: A selector is empty, has an empty segment, starts with no
            top-level key of a batch, or points into ``events``.
    """
    items = tuple(selectors)
    for item in items:
        if not isinstance(item, str):
            raise ConfigurationError(
                f"metadata field exclusion entries must be strings, got {item!r}"
            )
    return _parse_cached(items)


def exclude_fields(batch: Mapping[str, Any], selectors: Iterable[str]) -> dict[str, Any]:
    """Return a copy of ``batch`` without the fields the selectors name.

    A selector naming a field that is absent (or whose parent is not an object) is ignored.

    Args:
        batch: An mParticle batch (a JSON object). Not mutated.
        selectors: ``"Device Name"``, ``"IP Address"`` or dotted paths.

    Returns:
        A new dict; unchanged sub-objects are shared with ``batch``.

    Raises:
        ConfigurationError: A selector is malformed (see :func:`parse_selectors`).
    """
    return exclude_paths(batch, parse_selectors(selectors))


def exclude_paths(batch: Mapping[str, Any], paths: Iterable[Path]) -> dict[str, Any]:
    """Like :func:`exclude_fields`, with already parsed paths (the fast path of the forwarder)."""
    fresh: set[int] = set()
    out: dict[str, Any] = dict(batch)
    fresh.add(id(out))
    for path in paths:
        out = _without(out, path, fresh)
    return out


def holds(batch: Mapping[str, Any], path: Path) -> bool:
    """Whether ``batch`` has a field at ``path`` (so excluding it removes something)."""
    node: Any = batch
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return False
        node = node[key]
    return True


def _without(obj: dict[str, Any], path: Path, fresh: set[int]) -> dict[str, Any]:
    """Remove ``path`` from ``obj``, copying each dict on the way unless we made it ourselves."""
    key = path[0]
    if key not in obj:
        return obj
    if len(path) == 1:
        new = obj if id(obj) in fresh else _copy(obj, fresh)
        del new[key]
        return new
    child = obj[key]
    if not isinstance(child, dict):
        return obj
    new_child = _without(child, path[1:], fresh)
    if new_child is child:
        return obj
    new = obj if id(obj) in fresh else _copy(obj, fresh)
    new[key] = new_child
    return new


def _copy(obj: dict[str, Any], fresh: set[int]) -> dict[str, Any]:
    new = dict(obj)
    fresh.add(id(new))
    return new
