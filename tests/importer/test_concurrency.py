"""Shards read at once: calls overlapped, events handed over in order, checkpoints honest."""

from __future__ import annotations

import json
from typing import Any

import pytest

from streambridge import (
    FatalSinkError,
    ImporterSettings,
    KinesisImporter,
    MemoryCheckpointStore,
    PostHogEvent,
)
from streambridge.testing import Latency, LocalAWS

pytestmark = pytest.mark.integration

SETTINGS = ImporterSettings(
    stream_name="clicks",
    event_key="name",
    additional_property_mappings="shard:shard,n:n",
    start_position="TRIM_HORIZON",
    records_per_call=50,
)


def fill(aws: LocalAWS, shards: int, per_shard: int) -> None:
    """A stream whose every shard holds ``per_shard`` records (explicit hash keys)."""
    aws.create_stream("clicks", shards=shards)
    kinesis = aws.client("kinesis")
    listed = kinesis.list_shards(StreamName="clicks")["Shards"]
    for index, shard in enumerate(listed):
        key = shard["HashKeyRange"]["StartingHashKey"]
        kinesis.put_records(
            StreamName="clicks",
            Records=[
                {
                    "Data": json.dumps({"name": "e", "shard": index, "n": n}).encode(),
                    "PartitionKey": "k",
                    "ExplicitHashKey": key,
                }
                for n in range(per_shard)
            ],
        )


def test_shards_are_read_at_once_and_handed_over_in_order(aws: LocalAWS) -> None:
    """One poll reads every due shard with calls in flight; the sink sees them shard by shard."""
    fill(aws, shards=6, per_shard=5)
    client = aws.client("kinesis")
    batches: list[list[PostHogEvent]] = []
    importer = KinesisImporter(client, SETTINGS, sink=lambda e: batches.append(list(e)))
    with Latency(client, 0.03) as latency:
        result = importer.poll()
    assert latency.most_in_flight > 1
    assert 30 == result.event_count
    order = [batch[0].properties["shard"] for batch in batches]
    assert sorted(order) == order  # in the shards' order, not in the calls' order
    assert all(len({e.properties["shard"] for e in batch}) == 1 for batch in batches)
    assert all(c.sequence_number for c in importer.shards.values())


def test_one_at_a_time_on_request(aws: LocalAWS) -> None:
    """max_in_flight=1 reads shard after shard."""
    fill(aws, shards=4, per_shard=2)
    client = aws.client("kinesis")
    importer = KinesisImporter(client, SETTINGS, sink=lambda _: None, max_in_flight=1)
    with Latency(client, 0.02) as latency:
        assert 8 == importer.poll().event_count
    assert 1 == latency.most_in_flight


def test_a_stop_drops_what_was_read_ahead_and_loses_nothing(aws: LocalAWS) -> None:
    """The sink stops the importer on the 3rd shard: later shards read ahead are read again."""
    fill(aws, shards=6, per_shard=4)
    client = aws.client("kinesis")
    store = MemoryCheckpointStore()
    handed: list[Any] = []

    def sink(events: Any) -> None:
        if len(handed) == 2:
            raise FatalSinkError("revoked")
        handed.append(list(events))

    importer = KinesisImporter(client, SETTINGS, sink=sink, checkpoints=store)
    with Latency(client, 0.02), pytest.raises(FatalSinkError):
        importer.poll()
    moved = [c for c in store.load("clicks").values() if c.sequence_number]
    assert 2 == len(moved)  # only the shards whose events were taken
    again: list[PostHogEvent] = []
    KinesisImporter(client, SETTINGS, sink=again.extend, checkpoints=store).run(
        until_caught_up=True, max_polls=10
    )
    first = {(e.properties["shard"], e.properties["n"]) for batch in handed for e in batch}
    rest = {(e.properties["shard"], e.properties["n"]) for e in again}
    assert {(s, n) for s in range(6) for n in range(4)} == first | rest
    assert not first & rest


def test_pacing_counts_from_the_start_of_each_call(aws: LocalAWS) -> None:
    """AWS counts 5 calls per second per shard from their starts: so does the next call's time."""
    fill(aws, shards=2, per_shard=3)
    ticks = iter(range(10_000))
    importer = KinesisImporter(
        aws.client("kinesis"), SETTINGS, sink=lambda _: None, clock=lambda: next(ticks) * 0.01
    )
    importer.poll()
    for shard in importer._table.shards.values():
        interval = SETTINGS.idle_poll_interval if shard.at_tip else SETTINGS.min_call_interval
        assert shard.next_call == pytest.approx(shard.began + interval)
