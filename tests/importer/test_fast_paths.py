"""The conversion's fast paths (issue 19) give what the plain ones give, for any JSON.

``getter`` unrolls object lookups, ``make_event`` builds events without attrs' ``__init__``
and keeps their encoding, ``uuid_maker`` hashes a shard's name prefix once, and the converter
decodes a plain one-object record with ``loads`` directly: each is checked against the plain
path on generated values.
"""

from __future__ import annotations

import uuid as uuid_module
from datetime import datetime, timezone
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from streambridge import ImporterSettings, PostHogEvent, RecordConverter
from streambridge._json import encode_record
from streambridge.errors import DecodeError, UnusableRecordError
from streambridge.importer.decoding import decode_record
from streambridge.importer.events import UUID_NAMESPACE, to_event, uuid_maker
from streambridge.importer.keys import MISSING, getter, lookup
from tests.strategies import json_values

segments = st.sampled_from(["a", "b", "0", "1", "", "é", "a.b"])
paths = st.lists(segments, min_size=1, max_size=5).map(tuple)
nested = st.recursive(
    json_values,
    lambda children: (
        st.dictionaries(segments, children, max_size=4) | st.lists(children, max_size=3)
    ),
    max_leaves=20,
)


@given(nested, paths)
def test_a_getter_finds_what_lookup_finds(value: Any, path: tuple[str, ...]) -> None:
    """Same value, or MISSING, for every path and value (dicts, lists, scalars)."""
    found = getter(path)(value)
    expected = lookup(value, path)
    assert (found is MISSING) == (expected is MISSING)
    if found is not MISSING:
        assert found is expected


@given(st.text(max_size=8), st.text(max_size=8), st.text(max_size=20), st.integers(0, 99))
def test_the_uuid_maker_is_uuid5(stream: str, shard: str, sequence: str, position: int) -> None:
    """Exactly RFC 4122 uuid5 of the name, with and without a sub-sequence."""
    make = uuid_maker(stream, shard)
    name = f"{stream}/{shard}/{sequence}/{position}"
    assert str(uuid_module.uuid5(UUID_NAMESPACE, name)) == make(sequence, position, None)
    name = f"{stream}/{shard}/{sequence}/3/{position}"
    assert str(uuid_module.uuid5(UUID_NAMESPACE, name)) == make(sequence, position, 3)


ARRIVAL = datetime(2024, 5, 1, 12, 0, 0, 123000, tzinfo=timezone.utc)
CONVERTER = RecordConverter(
    ImporterSettings(stream_name="s", event_key="name", additional_property_mappings="a:a,b.c:c")
)


@given(st.dictionaries(st.sampled_from(["name", "a", "b", "x"]), nested, max_size=4))
def test_events_made_fast_equal_events_made_plainly(document: dict[str, Any]) -> None:
    """An event from the converter equals one built with PostHogEvent(), bytes and all."""
    record = {
        "Data": encode_record(document),
        "SequenceNumber": "7",
        "ApproximateArrivalTimestamp": ARRIVAL,
    }
    events, skipped = CONVERTER.convert("shardId-000000000000", [record])
    assert len(events) + len(skipped) == 1
    for event in events:
        plain = PostHogEvent(
            event=event.event,
            distinct_id=event.distinct_id,
            properties=event.properties,
            timestamp=event.timestamp,
            uuid=event.uuid,
        )
        assert plain == event
        assert plain.capture_bytes() == event.capture_bytes()
        assert encode_record(event.capture_json()) == event.capture_bytes()


@given(
    st.binary(max_size=40) | nested.map(encode_record) | st.just(b'{"name": "x"}\n{"name": "y"}')
)
def test_the_short_way_decodes_as_decode_record(data: bytes) -> None:
    """Whatever a record holds, the converter skips or converts it as decode_record reads it."""
    try:
        expected: Any = decode_record(data)
    except Exception as exc:  # noqa: BLE001 - compared below
        expected = type(exc)
    events, skipped = CONVERTER.convert(
        "shardId-000000000000",
        [{"Data": data, "SequenceNumber": "1", "ApproximateArrivalTimestamp": ARRIVAL}],
    )
    if isinstance(expected, type):
        assert [] == events
        assert 1 == len(skipped)
    else:
        assert len(expected) == len(events) + len(skipped)


def _by_the_general_way(data: bytes) -> tuple[list[PostHogEvent], list[tuple[int, str]]]:
    """What the converter's general way makes of one record: decode_record, then to_event."""
    try:
        values = decode_record(data)
    except DecodeError as exc:
        return [], [(0, exc.reason)]
    events: list[PostHogEvent] = []
    skipped: list[tuple[int, str]] = []
    make_uuid = uuid_maker("s", "shardId-000000000000")
    for position, value in enumerate(values):
        try:
            events.append(
                to_event(
                    value,
                    event_key="name",
                    mappings=CONVERTER.mappings,
                    arrival=ARRIVAL,
                    uuid=make_uuid("1", position, None),
                    default_distinct_id="AWS Kinesis",
                )
            )
        except UnusableRecordError as exc:  # noqa: PERF203 - a test
            skipped.append((position, exc.reason))
    return events, skipped


documents = st.fixed_dictionaries(
    {},
    optional={
        "name": st.text(min_size=1, max_size=5) | nested,  # mostly a usable name
        "a": nested,
        "b": nested,
        "distinct_id": st.text(max_size=3) | nested,
    },
).filter(lambda d: "name" in d)


@given(
    documents.map(encode_record)
    | st.builds(lambda d, tail: encode_record(d) + tail, documents, st.sampled_from([b" ", b"}"]))
    | st.builds(lambda a, b: encode_record(a) + b"\n" + encode_record(b), documents, documents)
    | st.binary(max_size=30).map(lambda b: b"{" + b)
)
def test_the_one_step_way_equals_the_general_way(data: bytes) -> None:
    """A record starting with ``{`` takes the one-step way: what the general way gives.

    One ``loads``, one event: the same events, uuids and skip reasons as decode_record and
    to_event give, for any bytes.
    """
    events, skipped = CONVERTER.convert(
        "shardId-000000000000",
        [{"Data": data, "SequenceNumber": "1", "ApproximateArrivalTimestamp": ARRIVAL}],
    )
    expected_events, expected_skips = _by_the_general_way(data)
    assert expected_events == events
    assert [e.capture_bytes() for e in expected_events] == [e.capture_bytes() for e in events]
    assert expected_skips == [(s.position, s.reason) for s in skipped]
