"""KPL-aggregated records: de-aggregation, conversion, uuids and checkpoints.

Aggregated records come from a real producer library, aws-kinesis-agg's ``RecordAggregator``
(a dev dependency); corrupt ones are made by hand.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

import pytest
from aws_kinesis_agg.aggregator import RecordAggregator

from streambridge import (
    ImporterSettings,
    KinesisImporter,
    RecordConverter,
    SQLiteCheckpointStore,
)
from streambridge.deadletter import dead_letter_line
from streambridge.importer.events import UUID_NAMESPACE, event_uuid
from streambridge.importer.kpl import MAGIC, NotAggregatedError, UserRecord, deaggregate
from streambridge.testing import LocalAWS

SETTINGS = ImporterSettings(
    stream_name="clicks",
    event_key="name",
    additional_property_mappings="user:distinct_id,n:n",
    start_position="TRIM_HORIZON",
)


def aggregate(*items: tuple[str, bytes] | tuple[str, bytes, str]) -> bytes:
    """One aggregated record of ``(partition key, data[, explicit hash key])`` user records."""
    aggregator = RecordAggregator()
    for item in items:
        aggregator.add_user_record(*item)
    _, _, data = aggregator.clear_and_get().get_contents()
    return bytes(data)


def event(n: int, name: str = "click") -> bytes:
    """A user record's data: one JSON document."""
    return json.dumps({"name": name, "user": f"u{n % 3}", "n": n}).encode()


def framed(message: bytes) -> bytes:
    """Magic, a protobuf message of our own making, and its digest."""
    return MAGIC + message + hashlib.md5(message).digest()  # noqa: S324 - the format's checksum


# --------------------------------------------------------------------------- de-aggregation


def test_deaggregates_what_the_producer_library_aggregated() -> None:
    """Every user record comes back in order, with its partition key and explicit hash key."""
    data = aggregate(("a", event(0)), ("b", event(1), "12345"), ("a", event(2)))
    assert data.startswith(MAGIC)
    assert [
        UserRecord("a", None, event(0)),
        UserRecord("b", "12345", event(1)),
        UserRecord("a", None, event(2)),
    ] == deaggregate(data)


def test_large_aggregates_and_multi_byte_lengths() -> None:
    """Hundreds of user records, some of several KiB (varints of more than one byte)."""
    items = [(f"k{n % 7}", event(n) + b" " * (n * 5)) for n in range(300)]
    users = deaggregate(aggregate(*items))
    assert [(key, data) for key, data in items] == [(u.partition_key, u.data) for u in users]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b'{"name": "x"}', "lacks the KPL magic bytes"),
        (MAGIC + b"short", "too short to hold an MD5 digest"),
        (aggregate(("a", event(0)))[:-1] + b"\x00", "MD5 digest does not match"),
        (framed(b"\x0a\x05ab"), "not valid"),  # a key of 5 bytes, 2 present
        (framed(b"\x0a\x01a\x1a\x02\x10\x00"), "lacks data"),  # a record without data
        (framed(b"\x0a\x01a\x1a\x05\x08\x03\x1a\x01x"), "key index is out of range"),
        (framed(b"\x0a\x01a\x1b"), "wire type 3"),  # a group: not in this format
        (framed(b"\x0a\x01\xff"), "UnicodeDecodeError"),
        (framed(b"\x08" + b"\xff" * 11), "varint too long"),
    ],
)
def test_corrupt_aggregates_are_not_aggregated(data: bytes, reason: str) -> None:
    """A bad digest or protobuf: not an aggregated record, and the reason says why."""
    with pytest.raises(NotAggregatedError, match=reason):
        deaggregate(data)


def test_unknown_fields_are_skipped() -> None:
    """Tags (field 4), and fields of other wire types, are read past, as protobuf does."""
    record = b"\x08\x00\x1a\x01x" + b"\x22\x03\x0a\x01t" + b"\x28\x07" + b"\x31" + b"\x00" * 8
    message = b"\x0a\x01a" + b"\x1a" + bytes([len(record)]) + record + b"\x25" + b"\x00" * 4
    assert [UserRecord("a", None, b"x")] == deaggregate(framed(message))


# --------------------------------------------------------------------------- conversion


def kinesis_record(sequence: str, data: bytes) -> dict[str, Any]:
    """A record as GetRecords returns it."""
    return {"SequenceNumber": sequence, "Data": data}


def test_each_user_record_is_its_own_events_with_its_own_uuids() -> None:
    """User records (one NDJSON, one not JSON) become events and skips with sub-sequences."""
    data = aggregate(("a", event(0)), ("b", event(1) + b"\n" + event(2)), ("c", b"not json"))
    events, skipped = RecordConverter(SETTINGS).convert("shard-0", [kinesis_record("77", data)])
    assert [0, 1, 2] == [e.properties["n"] for e in events]
    assert [
        event_uuid("clicks", "shard-0", "77", 0, 0),
        event_uuid("clicks", "shard-0", "77", 0, 1),
        event_uuid("clicks", "shard-0", "77", 1, 1),
    ] == [e.uuid for e in events]
    assert len({e.uuid for e in events}) == 3
    (skip,) = skipped
    assert ("77", 2, 0, b"not json") == (
        skip.sequence_number,
        skip.sub_sequence,
        skip.position,
        skip.data,
    )
    assert skip.reason.startswith("not JSON")
    assert 2 == json.loads(dead_letter_line(skip))["sub_sequence"]


def test_a_corrupt_aggregate_is_a_plain_record_skipped_with_a_reason() -> None:
    """Bad MD5: treated as a plain record (as the KCL does), which is not JSON: skipped."""
    data = aggregate(("a", event(0)))[:-1] + b"\x00"
    events, skipped = RecordConverter(SETTINGS).convert("s", [kinesis_record("5", data)])
    assert [] == events
    assert "has the KPL magic bytes but is not an aggregated record" in skipped[0].reason
    assert "MD5" in skipped[0].reason
    assert skipped[0].sub_sequence is None


def test_an_empty_aggregate_is_skipped_with_a_reason() -> None:
    """An aggregate of no user records is no silent gap: a skip says so."""
    events, skipped = RecordConverter(SETTINGS).convert("s", [kinesis_record("6", framed(b""))])
    assert [] == events
    assert ["KPL-aggregated record with no user records"] == [s.reason for s in skipped]


def test_uuids_of_plain_records_do_not_change() -> None:
    """A plain record's uuid is what it always was (PostHog dedupes on it across upgrades)."""
    sequence = "49590338271490256608559692538361571095921575989136588898"
    # the value 0.1 gave (its UUID_NAMESPACE and its "stream/shard/sequence/position" name)
    expected = "44368b91-7976-5b5e-99d1-1fe859736366"
    name = f"clicks/shardId-000000000000/{sequence}/0"
    assert expected == str(uuid.uuid5(UUID_NAMESPACE, name))
    assert expected == event_uuid("clicks", "shardId-000000000000", sequence, 0)
    events, _ = RecordConverter(SETTINGS).convert(
        "shardId-000000000000", [kinesis_record(sequence, event(1))]
    )
    assert [expected] == [e.uuid for e in events]


# --------------------------------------------------------------------------- end to end


def put_aggregated(aws: LocalAWS, count: int, per_record: int) -> None:
    """``count`` user records, aggregated ``per_record`` to a Kinesis record."""
    data = [
        aggregate(*[(f"k{n}", event(n)) for n in range(start, min(start + per_record, count))])
        for start in range(0, count, per_record)
    ]
    aws.put_records("clicks", data)


@pytest.mark.integration
def test_a_stream_of_aggregated_records_is_imported_whole(aws: LocalAWS) -> None:
    """26 user records in 3 aggregated records: 26 events, nothing skipped."""
    aws.create_stream("clicks", shards=2)
    put_aggregated(aws, 26, per_record=10)
    events: list[Any] = []
    importer = KinesisImporter(aws.client("kinesis"), SETTINGS, sink=events.extend)
    totals = importer.run(until_caught_up=True, max_polls=20)
    assert (26, 0, 3) == (totals.events, totals.skipped, totals.records)
    assert set(range(26)) == {e.properties["n"] for e in events}


@pytest.mark.integration
def test_a_crash_inside_an_aggregate_loses_and_renumbers_nothing(
    aws: LocalAWS, tmp_path: Any
) -> None:
    """The sink dies part way through a read: the next run brings every user record, same uuids."""
    aws.create_stream("clicks", shards=1)
    put_aggregated(aws, 30, per_record=10)
    store = SQLiteCheckpointStore(tmp_path / "state.db")
    seen: list[Any] = []

    def dying(events: Any) -> None:
        seen.extend(events[:15])  # half the read reached the destination, then a crash
        raise SystemExit

    with pytest.raises(SystemExit):
        KinesisImporter(aws.client("kinesis"), SETTINGS, sink=dying, checkpoints=store).poll()
    again: list[Any] = []
    restarted = KinesisImporter(
        aws.client("kinesis"), SETTINGS, sink=again.extend, checkpoints=store
    )
    restarted.run(until_caught_up=True, max_polls=20)
    assert set(range(30)) == {e.properties["n"] for e in again}
    first = {e.properties["n"]: e.uuid for e in seen}
    assert all(first[n] == e.uuid for e in again if (n := e.properties["n"]) in first)
    store.close()
