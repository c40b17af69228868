"""Unit tests of streambridge.importer.conversion: records -> events and skips (no client)."""

from __future__ import annotations

from datetime import datetime, timezone

from streambridge import ImporterSettings, PostHogEvent, RecordConverter, SinkRefusal
from streambridge.importer.events import event_uuid

ARRIVAL = datetime(2026, 12, 2, tzinfo=timezone.utc)
CONVERTER = RecordConverter(
    ImporterSettings(
        stream_name="clicks",
        event_key="properties.eventName",
        additional_property_mappings="properties.userId:distinct_id,properties.foo:foo",
    )
)


def record(sequence: str, data: bytes, **extra: object) -> dict[str, object]:
    """A record as botocore's GetRecords returns it."""
    return {"Data": data, "SequenceNumber": sequence, **extra}


def test_each_document_is_one_event_with_its_own_uuid() -> None:
    """NDJSON gives one event per document; uuids come from stream, shard, sequence, position."""
    data = b'{"properties": {"eventName": "a", "userId": "u1", "foo": 1}}\n' * 2
    events, skipped = CONVERTER.convert(
        "shard-1", [record("7", data, ApproximateArrivalTimestamp=ARRIVAL)]
    )
    assert [] == skipped
    assert [event_uuid("clicks", "shard-1", "7", 0), event_uuid("clicks", "shard-1", "7", 1)] == [
        e.uuid for e in events
    ]
    assert (
        PostHogEvent(
            event="a",
            distinct_id="u1",
            properties={"foo": 1},
            timestamp=ARRIVAL,
            uuid=events[0].uuid,
        )
        == events[0]
    )


def test_what_cannot_become_an_event_is_skipped_with_a_reason() -> None:
    """A record that is not JSON, or a document without an event name, is skipped; the rest go on."""
    records = [
        record("1", b"not json"),
        record("2", b'{"properties": {}}\n{"properties": {"eventName": "ok"}}'),
    ]
    events, skipped = CONVERTER.convert("s", records)
    assert ["ok"] == [e.event for e in events]
    assert datetime(1970, 1, 1, tzinfo=timezone.utc) == events[0].timestamp  # no arrival time
    assert [("1", 0), ("2", 0)] == [(s.sequence_number, s.position) for s in skipped]
    assert skipped[0].reason.startswith("not JSON")
    assert "no event name at 'properties.eventName'" == skipped[1].reason


def test_refusals_become_skipped_records_of_their_document() -> None:
    """The sink's refusals are found again by uuid: (sequence, position), with the reason."""
    data = b'{"properties": {"eventName": "a"}}\n{"properties": {"eventName": "b"}}'
    records = [record("1", b"broken"), record("9", data)]
    events, _ = CONVERTER.convert("s", records)
    skipped = CONVERTER.refused("s", records, [SinkRefusal(events[1], "too large")])
    assert [("9", 1, "refused by the sink: too large")] == [
        (s.sequence_number, s.position, s.reason) for s in skipped
    ]
