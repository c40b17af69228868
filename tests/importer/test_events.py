"""Unit tests of record decoding and the record-to-PostHog-event conversion."""

from __future__ import annotations

import json
import re
import uuid as uuid_module
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from streambridge import PostHogEvent, UnusableRecordError
from streambridge.importer.events import event_uuid, to_event
from streambridge.importer.keys import parse_property_mappings

ARRIVAL = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
README_RECORD = {"properties": {"eventName": "my posthog event", "userId": "$userId", "foo": "bar"}}
README_MAPPINGS = parse_property_mappings("properties.userId:distinct_id,properties.foo:foo")


def convert(
    payload: Any, event_key: str = "properties.eventName", mappings: str = ""
) -> PostHogEvent:
    """Convert with fixed arrival, uuid and default distinct_id."""
    return to_event(
        payload,
        event_key=event_key,
        mappings=parse_property_mappings(mappings),
        arrival=ARRIVAL,
        uuid="u",
        default_distinct_id="AWS Kinesis",
    )


def test_readme_example_maps_as_the_app() -> None:
    """The app's README example: event name, distinct_id and foo."""
    event = to_event(
        README_RECORD,
        event_key="properties.eventName",
        mappings=README_MAPPINGS,
        arrival=ARRIVAL,
        uuid="u",
        default_distinct_id="AWS Kinesis",
    )
    assert ("my posthog event", "$userId", {"foo": "bar"}) == (
        event.event,
        event.distinct_id,
        dict(event.properties),
    )
    assert ARRIVAL == event.timestamp


def test_without_distinct_id_mapping_the_default_is_used() -> None:
    """Like the app, events without a distinct_id mapping belong to one default person."""
    assert "AWS Kinesis" == convert(README_RECORD).distinct_id


def test_values_of_every_json_type_are_mapped() -> None:
    """Numbers, booleans, null, "", objects and arrays are mapped (the app maps only strings)."""
    record = {
        "n": "e",
        "p": {"i": 0, "f": 1.5, "b": False, "z": None, "s": "", "o": {"k": 1}, "l": [1]},
    }
    event = convert(record, "n", ",".join(f"p.{k}:{k}" for k in "ifbzsol"))
    assert {
        "i": 0,
        "f": 1.5,
        "b": False,
        "z": None,
        "s": "",
        "o": {"k": 1},
        "l": [1],
    } == event.properties


def test_duplicate_targets_last_present_wins() -> None:
    """When two mappings write one target, the last one present wins; a missing one does not erase."""
    record = {"n": "e", "a": 1, "b": 2}
    assert {"t": 2} == dict(convert(record, "n", "a:t,b:t").properties)
    assert {"t": 1} == dict(convert(record, "n", "a:t,missing:t").properties)


def test_unicode_and_dotted_targets() -> None:
    """Unicode keys work and dotted targets stay literal."""
    record = {"n": "e", "größe": {"日本": "ok"}}
    assert {"my.prop": "ok"} == dict(convert(record, "n", "größe.日本:my.prop").properties)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ({"x": 1}, "no event name at 'properties.eventName'"),
        ({"properties": {"eventName": ""}}, "is an empty string"),
        ({"properties": {"eventName": 42}}, "not a string (a number)"),
        ({"properties": {"eventName": {"a": 1}}}, "not a string (an object)"),
        ({"properties": {"eventName": None}}, "not a string (null)"),
        ({"properties": {"eventName": True}}, "not a string (a boolean)"),
        ({"properties": {"eventName": ["x"]}}, "not a string (an array)"),
        ("hello", "no event name"),
    ],
)
def test_event_name_must_be_a_non_empty_string(payload: Any, reason: str) -> None:
    """Records without a usable event name are skipped with a reason (the app passed numbers on)."""
    with pytest.raises(UnusableRecordError, match=re.escape(reason)):
        convert(payload)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("user-1", "user-1"), (42, "42"), (1.5, "1.5"), (2**70, str(2**70))],
)
def test_distinct_id_mapping(value: Any, expected: str) -> None:
    """A distinct_id target becomes the event's distinct_id (numbers as text), not a property."""
    event = convert({"n": "e", "u": value}, "n", "u:distinct_id")
    assert expected == event.distinct_id
    assert "distinct_id" not in event.properties


@pytest.mark.parametrize("value", [None, "", "  ", True, {"a": 1}, [1]])
def test_unusable_distinct_id_skips(value: Any) -> None:
    """A distinct_id PostHog would not ingest skips the record with a reason."""
    with pytest.raises(UnusableRecordError, match="distinct_id"):
        convert({"n": "e", "u": value}, "n", "u:distinct_id")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-05-01T10:00:00Z", datetime(2024, 5, 1, 10, tzinfo=timezone.utc)),
        ("2024-05-01T12:00:00+02:00", datetime(2024, 5, 1, 10, tzinfo=timezone.utc)),
        ("2024-05-01T10:00:00", datetime(2024, 5, 1, 10, tzinfo=timezone.utc)),  # naive: UTC
        (1714557600, datetime(2024, 5, 1, 10, tzinfo=timezone.utc)),  # epoch seconds
        (1714557600000, datetime(2024, 5, 1, 10, tzinfo=timezone.utc)),  # epoch milliseconds
        (1714557600.5, datetime(2024, 5, 1, 10, 0, 0, 500000, tzinfo=timezone.utc)),
    ],
)
def test_timestamp_mapping(value: Any, expected: datetime) -> None:
    """A timestamp target sets the event time (ISO text or epoch s/ms) and leaves properties."""
    event = convert({"n": "e", "t": value}, "n", "t:timestamp")
    assert expected == event.timestamp
    assert "timestamp" not in event.properties


@pytest.mark.parametrize("value", ["yesterday", None, True, {"a": 1}, 10**20])
def test_bad_timestamp_skips(value: Any) -> None:
    """A timestamp that cannot be read skips the record with a reason."""
    with pytest.raises(UnusableRecordError, match="timestamp"):
        convert({"n": "e", "t": value}, "n", "t:timestamp")


def test_event_uuid_is_deterministic_and_valid() -> None:
    """Same record, same uuid; another position or record, another uuid; always a valid UUID."""
    first = event_uuid("s", "shardId-000000000000", "4959", 0)
    assert first == event_uuid("s", "shardId-000000000000", "4959", 0)
    assert first != event_uuid("s", "shardId-000000000000", "4959", 1)
    assert first != event_uuid("s", "shardId-000000000001", "4959", 0)
    assert 5 == uuid_module.UUID(first).version


def test_capture_shapes() -> None:
    """capture_kwargs fits posthog-python's capture(); capture_json the capture API."""
    event = PostHogEvent(
        event="e",
        distinct_id="d",
        properties={"a": 1},
        timestamp=datetime(2024, 5, 1, 12, tzinfo=timezone(timedelta(hours=2))),
        uuid="u",
    )
    assert {
        "event": "e",
        "distinct_id": "d",
        "properties": {"a": 1},
        "timestamp": datetime(2024, 5, 1, 10, tzinfo=timezone.utc),
        "uuid": "u",
    } == event.capture_kwargs()
    body = event.capture_json(api_key="phc_x")
    assert {
        "api_key": "phc_x",
        "event": "e",
        "distinct_id": "d",
        "properties": {"a": 1},
        "timestamp": "2024-05-01T10:00:00+00:00",
        "uuid": "u",
    } == body
    assert json.loads(json.dumps(body)) == body
    assert "api_key" not in event.capture_json()
    with pytest.raises(ValueError, match="timezone-aware"):
        PostHogEvent(event="e", distinct_id="d", timestamp=datetime(2024, 5, 1), uuid="u")  # noqa: DTZ001


@pytest.mark.parametrize(
    ("stream", "shard", "sequence", "position"),
    [("s", "shardId-000000000000", "4959", 0), ("ünï", "x", "1" * 56, 7)],
)
def test_event_uuid_equals_uuid5(stream: str, shard: str, sequence: str, position: int) -> None:
    """The fast uuid is exactly RFC 4122 uuid5 of stream/shard/sequence/position."""
    from streambridge.importer.events import UUID_NAMESPACE  # noqa: PLC0415

    expected = uuid_module.uuid5(UUID_NAMESPACE, f"{stream}/{shard}/{sequence}/{position}")
    assert str(expected) == event_uuid(stream, shard, sequence, position)
