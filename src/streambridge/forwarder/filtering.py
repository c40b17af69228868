"""Apply the integration's connection settings to one mParticle batch.

Pure: plain dicts in, plain dicts out; no I/O, no logging, the input never mutated. Only the
objects that change are copied (the top-level dict, the ``events`` list, an event whose
``location`` is removed, ``context``); everything else is shared with the input, so treat input
and output as read-only. Processing order (``docs/forwarder.md`` explains each step):

1. drop malformed events (counted, with a reason) and events whose type a setting turns off;
2. remove ``events[].data.location`` (Include Location Information off);
3. remove ``context.location`` (Include Event Batch Location off; an emptied ``context`` goes);
4. remove ``application_info``, ``device_info``, ``source_info`` (Include Metadata off);
5. remove the Metadata Field Exclusion fields;
6. remove ``mp_deviceid`` (Include MP DeviceId off);
7. set ``unique_id`` (Unique ID set);
8. the eventless check (Send Batches without Events), *after* filtering.

Event types are matched ignoring case (``CUSTOM_EVENT`` is a custom event) and passed through
unchanged. Types no setting covers (``first_run``, ``opt_out``, ``uninstall``, ``breadcrumb``,
``validation_result``, unknown ones) always pass.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import attrs

from streambridge._json import json_kind
from streambridge.errors import InvalidBatchError
from streambridge.forwarder.exclusion import Path, exclude_paths, holds, parse_selectors
from streambridge.forwarder.settings import ForwarderSettings

__all__ = [
    "EVENT_TYPE_SETTINGS",
    "FilterOutcome",
    "evaluate",
    "event_type_enabled",
    "filter_batch",
]

#: Which setting gates which ``event_type`` (lower case). Types absent here always pass.
EVENT_TYPE_SETTINGS: Mapping[str, str] = {
    "session_start": "send_lifecycle_events",
    "session_end": "send_lifecycle_events",
    "application_state_transition": "send_lifecycle_events",
    "screen_view": "send_screen_views",
    "crash_report": "send_crash_events",
    "network_performance": "send_network_performance_events",
    "custom_event": "send_custom_events",
    "push_registration": "send_push_registrations_and_receipts",
    "push_message": "send_push_registrations_and_receipts",
    "push_reaction": "send_push_registrations_and_receipts",
    "commerce_event": "send_commerce_events",
    "profile": "send_profile_change_events",
    "user_attribute_change": "include_user_attribute_change_events",
    "user_identity_change": "include_user_identity_change_events",
}

_METADATA_KEYS = ("application_info", "device_info", "source_info")

# Reasons for dropping a malformed event; stable strings, used as keys of FilterOutcome.dropped.
NOT_AN_OBJECT = "event is not a JSON object"
NO_EVENT_TYPE = "event has no event_type"
BAD_EVENT_TYPE = "event_type is not a non-empty string"
BAD_DATA = "event data is not a JSON object"


@attrs.frozen
class FilterOutcome:
    """What :func:`evaluate` made of one batch.

    Attributes:
        batch: The batch to send, or None when it is not to be sent.
        skip_reason: Why ``batch`` is None (a sentence naming the setting), else None.
        filtered_events: Events removed because a setting turns their type off.
        dropped: Malformed events removed, by reason.
        dropped_items: Each malformed event removed: its index in ``events``, the reason,
            and the event itself (to be kept as a dead letter).
        excluded: The Metadata Field Exclusion paths that removed a field from this batch.
    """

    batch: dict[str, Any] | None
    skip_reason: str | None = None
    filtered_events: int = 0
    dropped: Mapping[str, int] = attrs.field(factory=dict, hash=False)
    dropped_items: tuple[tuple[int, str, Any], ...] = attrs.field(default=(), hash=False)
    excluded: tuple[tuple[str, ...], ...] = ()

    @property
    def dropped_events(self) -> int:
        """How many malformed events were removed."""
        return sum(self.dropped.values())


@attrs.frozen
class _Plan:
    """What a settings object asks for, precomputed once per settings value."""

    blocked: frozenset[str]
    strip_location: bool
    strip_batch_location: bool
    strip_metadata: bool
    strip_deviceid: bool
    exclusion: tuple[Path, ...]
    unique_id: str | None
    send_eventless: bool


@lru_cache(maxsize=64)
def _plan(settings: ForwarderSettings) -> _Plan:
    blocked = frozenset(
        event_type
        for event_type, setting in EVENT_TYPE_SETTINGS.items()
        if not getattr(settings, setting)
    )
    return _Plan(
        blocked=blocked,
        strip_location=not settings.include_location_information,
        strip_batch_location=not settings.include_event_batch_location,
        strip_metadata=not settings.include_metadata,
        strip_deviceid=not settings.include_mp_deviceid,
        exclusion=parse_selectors(settings.metadata_field_exclusion),
        unique_id=settings.unique_id,
        send_eventless=settings.send_batches_without_events,
    )


def event_type_enabled(event_type: str, settings: ForwarderSettings) -> bool:
    """Whether events of ``event_type`` pass the settings (case-insensitive; unknown types pass)."""
    return event_type.lower() not in _plan(settings).blocked


def filter_batch(batch: object, settings: ForwarderSettings) -> dict[str, Any] | None:
    """Apply the settings to ``batch``.

    Args:
        batch: One mParticle batch, as decoded from JSON. Never mutated.
        settings: The connection settings.

    Returns:
        A new batch with the settings applied, or None when the batch is not to be sent
        (it is left with no events and Send Batches without Events is off).

    Raises:
        InvalidBatchError: ``batch`` is not a JSON object, or its ``events`` is not a list.
    """
    return evaluate(batch, settings).batch


def evaluate(batch: object, settings: ForwarderSettings) -> FilterOutcome:
    """Like :func:`filter_batch`, also saying why and what was removed.

    Raises:
        InvalidBatchError: ``batch`` is not a JSON object, or its ``events`` is not a list.
    """
    if not isinstance(batch, Mapping):
        raise InvalidBatchError(f"batch is not a JSON object (got {json_kind(batch)})")
    plan = _plan(settings)
    out: dict[str, Any] = dict(batch)
    filtered = 0
    dropped: dict[str, int] = {}
    items: list[tuple[int, str, Any]] = []
    had_events = "events" in batch
    events = batch.get("events")
    if had_events:
        if not isinstance(events, list):
            raise InvalidBatchError(f"events is not a list (got {json_kind(events)})")
        kept, filtered = _filter_events(events, plan, dropped, items)
        out["events"] = kept
        has_events = bool(kept)
    else:
        has_events = False

    if plan.strip_batch_location:
        context = out.get("context")
        if isinstance(context, dict) and "location" in context:
            context = {k: v for k, v in context.items() if k != "location"}
            if context:
                out["context"] = context
            else:
                del out["context"]
    if plan.strip_metadata:
        for key in _METADATA_KEYS:
            out.pop(key, None)
    excluded: tuple[tuple[str, ...], ...] = ()
    if plan.exclusion:
        excluded = tuple(path for path in plan.exclusion if holds(out, path))
        out = exclude_paths(out, plan.exclusion)
    if plan.strip_deviceid:
        out.pop("mp_deviceid", None)
    if plan.unique_id:
        out["unique_id"] = plan.unique_id

    if not has_events and not plan.send_eventless:
        if not had_events or not events:
            reason = "batch has no events and Send Batches without Events is off"
        else:
            reason = (
                f"all {len(events)} events were removed (filtered {filtered}, malformed "
                f"{sum(dropped.values())}) and Send Batches without Events is off"
            )
        return FilterOutcome(None, reason, filtered, dropped, tuple(items), excluded)
    return FilterOutcome(out, None, filtered, dropped, tuple(items), excluded)


def _filter_events(
    events: list[Any], plan: _Plan, dropped: dict[str, int], items: list[tuple[int, str, Any]]
) -> tuple[list[Any], int]:
    blocked = plan.blocked
    strip_location = plan.strip_location
    kept: list[Any] = []
    filtered = 0

    def drop(position: int, reason: str, event: Any) -> None:
        dropped[reason] = dropped.get(reason, 0) + 1
        items.append((position, reason, event))

    for position, event in enumerate(events):
        if not isinstance(event, dict):
            drop(position, NOT_AN_OBJECT, event)
            continue
        event_type = event.get("event_type")
        if not isinstance(event_type, str) or not event_type:
            drop(position, NO_EVENT_TYPE if event_type is None else BAD_EVENT_TYPE, event)
            continue
        if blocked and event_type.lower() in blocked:
            filtered += 1
            continue
        data = event.get("data")
        if not isinstance(data, dict):
            if data is not None:
                drop(position, BAD_DATA, event)
                continue
        elif strip_location and "location" in data:
            event = dict(event)  # noqa: PLW2901 - copy-on-write of this one event
            event["data"] = {k: v for k, v in data.items() if k != "location"}
        kept.append(event)
    return kept, filtered
