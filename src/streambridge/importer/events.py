"""PostHog events, their deterministic uuids, and one decoded document -> one event.

Pure: no I/O. (Whole records -> events is :mod:`streambridge.importer.conversion`.)
:func:`to_event` applies the PostHog "Amazon Kinesis Import" app's configuration
(an ``eventKey`` and ``additionalPropertyMappings``) to a decoded record:

* the event name is the value at ``event_key`` and must be a non-empty string;
* each mapping copies the value at its source path — any JSON type — to a flat property
  (a missing source is skipped; when several mappings write one target, the last present wins);
* a ``distinct_id`` target becomes the event's ``distinct_id`` (a string, or a number written as
  a string), and a ``timestamp`` target its timestamp (ISO 8601 text, or epoch seconds /
  milliseconds); neither stays in ``properties``;
* without a ``timestamp`` mapping the record's ``ApproximateArrivalTimestamp`` is the timestamp;
* the ``uuid`` is derived from stream, shard, sequence number (and, for a KPL-aggregated record,
  the user record's sub-sequence number) and position inside the record, so importing the same
  record twice gives the same uuid and PostHog de-duplicates it.
"""

from __future__ import annotations

import functools
import hashlib
import math
import uuid as _uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any

import attrs

from streambridge._json import encode_record, encode_record_stdlib, json_kind
from streambridge._util import parse_iso_datetime
from streambridge.errors import EncodingError, UnusableRecordError
from streambridge.importer.keys import MISSING, PropertyMapping, getter, parse_path

__all__ = [
    "UUID_NAMESPACE",
    "PostHogEvent",
    "event_uuid",
    "make_event",
    "to_event",
    "uuid_maker",
]

#: Namespace of the deterministic event uuids (uuid5 of ``stream/shard/sequence/position``).
UUID_NAMESPACE = _uuid.UUID("5b6c1f0e-7a43-4c8e-9a57-3f1d2b8e6c11")

_MS_THRESHOLD = 100_000_000_000  # epoch numbers above this are milliseconds (after 1973 in ms)


def _utc(value: datetime) -> datetime:
    if value.tzinfo is timezone.utc:
        return value
    if value.tzinfo is None:
        msg = "timestamp must be timezone-aware"
        raise ValueError(msg)
    return value.astimezone(timezone.utc)


@attrs.frozen(kw_only=True)
class PostHogEvent:
    """One event for PostHog's capture API.

    Attributes:
        event: The event name (non-empty).
        distinct_id: Who did it.
        properties: The mapped properties (flat keys).
        timestamp: When it happened (timezone-aware, UTC).
        uuid: A deterministic id; PostHog drops a second event with the same uuid.

    Its capture JSON is encoded once (:meth:`capture_bytes`) — by the converter, which checks
    that every event it makes can be sent — and the sinks reuse those bytes; change an
    event with ``attrs.evolve``, not by changing its ``properties`` in place.
    """

    event: str
    distinct_id: str
    properties: Mapping[str, Any] = attrs.field(factory=dict, hash=False)
    timestamp: datetime = attrs.field(converter=_utc)
    uuid: str
    _encoded: bytes | None = attrs.field(default=None, init=False, eq=False, hash=False, repr=False)

    def capture_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for posthog-python's ``Posthog.capture()`` (version 6 and later).

        Example: ``client.capture(**event.capture_kwargs())`` — for your own code; not as an
        importer sink: ``capture()`` queues and returns before PostHog has the event (use
        :class:`~streambridge.PostHogSink`).
        """
        return {
            "event": self.event,
            "distinct_id": self.distinct_id,
            "properties": dict(self.properties),
            "timestamp": self.timestamp,
            "uuid": self.uuid,
        }

    def capture_json(self, api_key: str | None = None) -> dict[str, Any]:
        """The event as a JSON object of PostHog's capture API (``POST /i/v0/e/``, ``/batch/``).

        Args:
            api_key: The project API key; included when given (single-event endpoint).
        """
        body: dict[str, Any] = {
            "event": self.event,
            "distinct_id": self.distinct_id,
            "properties": dict(self.properties),
            "timestamp": self.timestamp.isoformat(),
            "uuid": self.uuid,
        }
        if api_key is not None:
            body = {"api_key": api_key, **body}
        return body

    def capture_bytes(self) -> bytes:
        """:meth:`capture_json` as compact UTF-8 JSON bytes, encoded on first use only.

        Raises:
            EncodingError: The event cannot be written as strict JSON (a lone surrogate, a
                value nested too deeply…).
        """
        data = self._encoded
        if data is None:
            data = _capture(
                self.event, self.distinct_id, self.properties, self.timestamp, self.uuid
            )
            object.__setattr__(self, "_encoded", data)  # a cache: the event stays as it was
        return data


def _capture(
    event: str, distinct_id: str, properties: Mapping[str, Any], timestamp: datetime, uuid: str
) -> bytes:
    """An event's capture JSON, encoded: the one place its shape as bytes is written."""
    return encode_record(
        {
            "event": event,
            "distinct_id": distinct_id,
            "properties": properties,
            # written as isoformat(): in C by orjson; the standard library's encoder would
            # call back into Python for a datetime, so it is given the text
            "timestamp": timestamp
            if encode_record is not encode_record_stdlib
            else timestamp.isoformat(),
            "uuid": uuid,
        }
    )


_NAMESPACE_BYTES = UUID_NAMESPACE.bytes
_new_event = object.__new__
_set = object.__setattr__
_getter = functools.lru_cache(maxsize=64)(getter)  # the event key's, made once per path


def event_uuid(
    stream: str,
    shard_id: str,
    sequence_number: str,
    position: int = 0,
    sub_sequence: int | None = None,
) -> str:
    """The deterministic uuid of the ``position``-th event of a record.

    The same value as ``str(uuid.uuid5(UUID_NAMESPACE, "stream/shard/sequence/position"))``,
    computed without building ``UUID`` objects (it is on the importer's hot path). For the
    ``sub_sequence``-th user record of a KPL-aggregated record the name is
    ``"stream/shard/sequence/sub_sequence/position"``: distinct per user record. User record 0
    has the plain record's name: a sequence number is one or the other, never both, and the
    KCL reports a plain record and an aggregate's first user record alike (sub-sequence 0), so
    every engine gives the same uuid.
    """
    return uuid_maker(stream, shard_id)(sequence_number, position, sub_sequence)


#: A hex digit with its top two bits set to the RFC 4122 variant (10xx).
_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}


def uuid_maker(stream: str, shard_id: str) -> Callable[[str, int, int | None], str]:
    """:func:`event_uuid` for one stream and shard: ``make(sequence, position, sub_sequence)``.

    The hash of the name's common beginning is computed once and copied for each event.
    """
    base = hashlib.sha1(_NAMESPACE_BYTES + f"{stream}/{shard_id}/".encode())  # noqa: S324 - RFC 4122 v5

    def make(sequence_number: str, position: int = 0, sub_sequence: int | None = None) -> str:
        sha = base.copy()
        if not sub_sequence:
            sha.update(f"{sequence_number}/{position}".encode())
        else:
            sha.update(f"{sequence_number}/{sub_sequence}/{position}".encode())
        x = sha.hexdigest()  # version 5 (its 13th digit), the RFC 4122 variant (its 17th)
        return f"{x[:8]}-{x[8:12]}-5{x[13:16]}-{_VARIANT[x[16]]}{x[17:20]}-{x[20:32]}"

    return make


def to_event(
    payload: Any,
    *,
    event_key: str | tuple[str, ...],
    mappings: tuple[PropertyMapping, ...],
    arrival: datetime,
    uuid: str,
    default_distinct_id: str,
    personless: bool = False,
) -> PostHogEvent:
    """Convert one decoded record into a PostHog event.

    Args:
        payload: The decoded JSON value of the record.
        event_key: Dotted path to the event name.
        mappings: The parsed ``additionalPropertyMappings``.
        arrival: The record's ``ApproximateArrivalTimestamp`` (the default timestamp).
        uuid: The event's uuid (see :func:`event_uuid`).
        default_distinct_id: The ``distinct_id`` when no mapping provides one.
        personless: Mark an event that gets ``default_distinct_id`` as personless
            (``$process_person_profile: false``).

    Returns:
        The event.

    Raises:
        UnusableRecordError: No non-empty string event name at ``event_key``, or a mapped
            ``distinct_id`` / ``timestamp`` that cannot be used; the reason says which.
    """
    path = parse_path(event_key) if isinstance(event_key, str) else event_key
    return make_event(
        payload, path, _getter(path), mappings, arrival, uuid, default_distinct_id, personless
    )


def make_event(
    payload: Any,
    path: tuple[str, ...],
    get_name: Callable[[Any], Any],
    mappings: tuple[PropertyMapping, ...],
    arrival: datetime,
    uuid: str,
    default_distinct_id: str,
    personless: bool,
) -> PostHogEvent:
    """:func:`to_event`, with the event key's :func:`~streambridge.importer.keys.getter`."""
    pairs = tuple((mapping.get, mapping.target) for mapping in mappings)
    return _event(path, get_name, pairs, default_distinct_id, personless, payload, arrival, uuid)


def _event(
    path: tuple[str, ...],
    get_name: Callable[[Any], Any],
    mappings: tuple[tuple[Callable[[Any], Any], str], ...],
    default_distinct_id: str,
    personless: bool,
    payload: Any,
    arrival: datetime,
    uuid: str,
) -> PostHogEvent:
    """:func:`make_event` with each mapping as (its getter, its target)."""
    name = get_name(payload)
    if name is MISSING:
        raise UnusableRecordError(f"no event name at {'.'.join(path)!r}")
    if not isinstance(name, str) or not name:
        kind = "an empty string" if name == "" else f"not a string ({json_kind(name)})"
        raise UnusableRecordError(f"event name at {'.'.join(path)!r} is {kind}")
    properties: dict[str, Any] = {}
    for get, target in mappings:
        value = get(payload)
        if value is not MISSING:
            properties[target] = value
    distinct_id = default_distinct_id
    if "distinct_id" in properties:
        distinct_id = _distinct_id(properties.pop("distinct_id"))
    elif personless:
        properties["$process_person_profile"] = False
    timestamp = arrival
    if "timestamp" in properties:
        timestamp = _timestamp(properties.pop("timestamp"))
    timestamp = _utc(timestamp)
    try:  # so that no sink is handed an event it cannot write; the sinks reuse the bytes
        encoded = _capture(name, distinct_id, properties, timestamp, uuid)
    except EncodingError as exc:
        raise UnusableRecordError(f"the event cannot be sent: {exc}") from None
    event = _new_event(PostHogEvent)  # its fields are checked above: no __init__ to pay for
    _set(event, "event", name)
    _set(event, "distinct_id", distinct_id)
    _set(event, "properties", properties)
    _set(event, "timestamp", timestamp)
    _set(event, "uuid", uuid)
    _set(event, "_encoded", encoded)
    return event


def _distinct_id(value: Any) -> str:
    if isinstance(value, str) and value.strip():
        return value
    if isinstance(value, float) and not math.isfinite(value):
        raise UnusableRecordError(f"distinct_id is {value!r}, not a usable number")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            return str(value)
        except ValueError:  # an integer beyond Python's digit limit for str()
            raise UnusableRecordError(
                f"distinct_id is a number of {_digits(value)} digits, too long to use"
            ) from None
    raise UnusableRecordError(
        f"distinct_id is not a non-empty string or a number ({json_kind(value)})"
    )


def _digits(value: float) -> str:
    """How many digits an integer has, without converting it to text (which may refuse)."""
    return f"about {int(abs(value)).bit_length() * 0.30103:.0f}"


def _timestamp(value: Any) -> datetime:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:  # the division too: a 400-digit integer overflows a float
            seconds = value / 1000 if abs(value) >= _MS_THRESHOLD else value
            return datetime.fromtimestamp(seconds, tz=timezone.utc)
        except (OverflowError, OSError, ValueError):
            shown = repr(value) if isinstance(value, float) else f"of {_digits(value)} digits"
            raise UnusableRecordError(f"timestamp {shown} is out of range") from None
    if isinstance(value, str):
        parsed = parse_iso_datetime(value)
        if parsed is None:
            raise UnusableRecordError(f"timestamp {value[:40]!r} is not ISO 8601")
        return parsed
    raise UnusableRecordError(
        f"timestamp is not ISO 8601 text or an epoch number ({json_kind(value)})"
    )
