"""Sink calls in flight across shards (issue 19), and checkpoints that still wait for them.

The importer keeps several sink calls in flight; a shard's next page may be read and handed
over while its last is in flight, but its checkpoint moves only past pages the sink confirmed,
in order. Each test goes through the local moto server; the checkpoint store is wrapped so
that every save is checked against what the sink had confirmed at that moment.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

import pytest

from streambridge import (
    FatalSinkError,
    ImporterSettings,
    KinesisImporter,
    MemoryCheckpointStore,
    PostHogEvent,
    PostHogSink,
    ShardCheckpoint,
)
from streambridge.testing import FakeClock, LocalAWS, local_posthog

pytestmark = pytest.mark.integration

STREAM = "in-flight"


def settings(records_per_call: int) -> ImporterSettings:
    """Records {"name", "n"}; the event's ``n`` property is the record's number."""
    return ImporterSettings(
        stream_name=STREAM,
        event_key="name",
        additional_property_mappings="n:n",
        start_position="TRIM_HORIZON",
        records_per_call=records_per_call,
    )


def put(aws: LocalAWS, count: int, shards: int) -> dict[int, tuple[str, str]]:
    """``count`` records over ``shards`` shards; record number -> (shard, sequence number)."""
    aws.create_stream(STREAM, shards=shards)
    kinesis = aws.client("kinesis")
    where: dict[int, tuple[str, str]] = {}
    for n in range(count):
        answer = kinesis.put_record(
            StreamName=STREAM, Data=f'{{"name": "e", "n": {n}}}'.encode(), PartitionKey=f"k{n}"
        )
        where[n] = (answer["ShardId"], answer["SequenceNumber"])
    return where


class CheckedStore(MemoryCheckpointStore):
    """Checkpoints that must never pass a record whose event the sink did not confirm."""

    def __init__(self, where: dict[int, tuple[str, str]], confirmed: set[int]) -> None:
        """Check saves against ``where`` each record is and the ``confirmed`` record numbers."""
        super().__init__()
        self.where = where
        self.confirmed = confirmed
        self.saves: list[tuple[str, str]] = []
        self.passed_unconfirmed: list[int] = []

    def save(self, stream: str, shard_id: str, checkpoint: ShardCheckpoint) -> None:
        """Note any record this save passes that was not confirmed, then save."""
        sequence = checkpoint.sequence_number
        if sequence is not None:
            self.saves.append((shard_id, sequence))
            self.passed_unconfirmed += [
                n
                for n, (shard, seq) in self.where.items()
                if shard == shard_id and int(seq) <= int(sequence) and n not in self.confirmed
            ]
        super().save(stream, shard_id, checkpoint)


class FlakySink:
    """A thread-safe sink taking ``calls_in_flight`` calls at once, slow and failing at random."""

    def __init__(self, calls: int, *, fail: float, seed: int) -> None:
        """``calls`` at once; a call fails with probability ``fail``."""
        self.calls_in_flight = calls
        self.confirmed: set[int] = set()
        self.delivered: list[int] = []
        self.in_flight = 0
        self.peak = 0
        self.fail = fail
        self._random = random.Random(seed)
        self._lock = threading.Lock()

    def __call__(self, events: Sequence[PostHogEvent]) -> None:
        """Take the events after up to 20 ms, or raise ConnectionError."""
        with self._lock:
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            delay, fails = self._random.random() * 0.02, self._random.random() < self.fail
        try:
            time.sleep(delay)
            if fails:
                raise ConnectionError("injected")
            with self._lock:
                numbers = [int(e.properties["n"]) for e in events]
                self.delivered += numbers
                self.confirmed.update(numbers)
        finally:
            with self._lock:
                self.in_flight -= 1


def test_posthog_sink_calls_are_in_flight_across_shards(aws: LocalAWS) -> None:
    """Library defaults, PostHog answering in 200 ms: several requests at once, all delivered."""
    where = put(aws, 400, shards=4)
    with local_posthog() as posthog:
        posthog.delay = 0.2
        sink = PostHogSink(api_key="k", host=posthog.url)
        store = CheckedStore(where, set())
        importer = KinesisImporter(
            aws.client("kinesis"), settings(50), sink=sink, checkpoints=store
        )
        totals = importer.run(until_caught_up=True)
        assert posthog.peak_in_flight >= 2
        assert set(range(400)) == {e["properties"]["n"] for e in posthog.events}
    assert 400 == totals.events
    last = {
        shard: max((s for sh, s in where.values() if sh == shard), key=int)
        for shard, _ in where.values()
    }
    assert last == {k: c.sequence_number for k, c in store.load(STREAM).items()}


def test_a_shards_next_page_goes_out_before_its_last_is_confirmed_but_not_its_checkpoint(
    aws: LocalAWS,
) -> None:
    """Page 1 held by the sink: page 2 is handed over meanwhile; no checkpoint passes page 1.

    Then page 1 fails: page 2's confirmation does not move the checkpoint either; both are read
    again, and the run ends with every record confirmed and the checkpoint at the last.
    """
    where = put(aws, 30, shards=1)
    release, calls = threading.Event(), []
    confirmed: set[int] = set()

    class HoldingSink:
        calls_in_flight = 4

        def __call__(self, events: Sequence[PostHogEvent]) -> None:
            numbers = [int(e.properties["n"]) for e in events]
            calls.append(numbers)
            if len(calls) == 1:  # the first page: held, then refused
                release.wait(10)
                raise ConnectionError("page 1 lost")
            confirmed.update(numbers)

    store = CheckedStore(where, confirmed)
    clock = FakeClock()
    importer = KinesisImporter(
        aws.client("kinesis"),
        settings(10),
        sink=HoldingSink(),
        checkpoints=store,
        clock=clock,
        sleep=clock.sleep,
    )
    outcome: list[Any] = []
    runner = threading.Thread(target=lambda: outcome.append(importer.run(until_caught_up=True)))
    runner.start()
    deadline = time.monotonic() + 5
    while len(calls) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    handed_meanwhile = len(calls)
    saved_meanwhile = list(store.saves)
    release.set()
    runner.join(30)
    assert handed_meanwhile >= 2, "the next page waited for the sink"
    assert [] == saved_meanwhile
    assert [] == store.passed_unconfirmed
    assert set(range(30)) == confirmed
    assert outcome
    assert 1 == outcome[0].sink_failures
    assert where[29][1] == store.load(STREAM)["shardId-000000000000"].sequence_number


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_no_checkpoint_ever_passes_an_unconfirmed_record(aws: LocalAWS, seed: int) -> None:
    """Slow, flaky sink calls in flight on 4 shards: every save is behind confirmed records only."""
    where = put(aws, 240, shards=4)
    sink = FlakySink(6, fail=0.25, seed=seed)
    store = CheckedStore(where, sink.confirmed)
    clock = FakeClock()
    importer = KinesisImporter(
        aws.client("kinesis"),
        settings(7),
        sink=sink,
        checkpoints=store,
        clock=clock,
        sleep=clock.sleep,
    )
    totals = importer.run(until_caught_up=True)
    assert [] == store.passed_unconfirmed
    assert set(range(240)) == sink.confirmed
    assert sink.peak >= 2
    assert 0 == totals.undelivered
    assert totals.sink_failures >= 1


def test_a_fatal_sink_error_in_flight_stops_with_nothing_passed_and_a_rerun_resumes(
    aws: LocalAWS,
) -> None:
    """One call refuses for good while others are in flight: the run stops, keeps its place."""
    where = put(aws, 120, shards=3)

    class RefusedError(FatalSinkError):
        pass

    confirmed: set[int] = set()
    lock = threading.Lock()

    class OnceFatal:
        calls_in_flight = 4
        count = 0

        def __call__(self, events: Sequence[PostHogEvent]) -> None:
            with lock:
                self.count += 1
                fatal = self.count == 3
            time.sleep(0.02)
            if fatal:
                raise RefusedError("key revoked")
            with lock:
                confirmed.update(int(e.properties["n"]) for e in events)

    store = CheckedStore(where, confirmed)
    clock = FakeClock()
    options: dict[str, Any] = {"checkpoints": store, "clock": clock, "sleep": clock.sleep}
    importer = KinesisImporter(aws.client("kinesis"), settings(5), sink=OnceFatal(), **options)
    with pytest.raises(RefusedError):
        importer.run(until_caught_up=True)
    assert [] == store.passed_unconfirmed
    assert len(confirmed) < 120
    again = KinesisImporter(
        aws.client("kinesis"), settings(5), sink=FlakySink(4, fail=0, seed=0), **options
    )
    store.confirmed = again.sink.confirmed | confirmed  # type: ignore[union-attr]
    again.sink.confirmed = store.confirmed  # type: ignore[union-attr]
    again.run(until_caught_up=True)
    assert set(range(120)) == store.confirmed
    assert [] == store.passed_unconfirmed


def test_a_stop_with_calls_in_flight_waits_for_them_and_loses_nothing(aws: LocalAWS) -> None:
    """stop() while calls are in flight: they end and are counted; a second run does the rest."""
    where = put(aws, 200, shards=4)
    sink = FlakySink(8, fail=0.0, seed=4)
    store = CheckedStore(where, sink.confirmed)
    importer = KinesisImporter(aws.client("kinesis"), settings(10), sink=sink, checkpoints=store)
    polls = [0]

    def stop() -> bool:
        polls[0] += 1
        return polls[0] > 3

    first = importer.run(stop=stop)
    assert first.events == len(sink.delivered)  # nothing confirmed goes uncounted
    assert [] == store.passed_unconfirmed
    KinesisImporter(aws.client("kinesis"), settings(10), sink=sink, checkpoints=store).run(
        until_caught_up=True
    )
    assert set(range(200)) == sink.confirmed
    assert [] == store.passed_unconfirmed


def test_a_run_lets_its_sink_threads_go(aws: LocalAWS) -> None:
    """After run() returns, no sink thread of the importer is left; a second run still works."""
    put(aws, 40, shards=2)
    sink = FlakySink(4, fail=0.0, seed=5)
    importer = KinesisImporter(aws.client("kinesis"), settings(5), sink=sink)
    importer.run(until_caught_up=True)
    assert [] == [t for t in threading.enumerate() if t.name.startswith("streambridge-sink")]
    aws.put_records(STREAM, [{"name": "e", "n": 40}])
    importer.run(until_caught_up=True)
    assert set(range(41)) == sink.confirmed


def test_the_hand_over_keeps_each_shards_pages_in_order() -> None:
    """Outcomes are taken from the head of each shard only; a drop moves the shard's epoch."""
    from streambridge.importer.handover import Handed, HandOver  # noqa: PLC0415
    from streambridge.importer.shards import Shard  # noqa: PLC0415

    gates = [threading.Event() for _ in range(3)]
    calls = iter(gates)

    def sink(events: Sequence[PostHogEvent]) -> None:
        next(calls).wait(5)

    handover = HandOver(sink, calls=3, pages_per_shard=2)
    shard = Shard("a", (), closed=False, inherits=False, iterator="it")
    other = Shard("b", (), closed=False, inherits=False, iterator="it")
    event = PostHogEvent(event="e", distinct_id="d", timestamp=datetime.now(timezone.utc), uuid="u")
    first, second = (Handed(shard, [], [event], [], "it") for _ in range(2))
    handover.submit(first)
    handover.submit(second)
    handover.submit(Handed(other, [], [event], [], "it"))
    assert handover.blocked(shard)
    assert not handover.blocked(other)
    gates[1].set()  # the second page of "a" ends first: nothing of "a" can be taken yet
    while not second.done():
        time.sleep(0.01)
    assert not handover.has_ready()
    assert [] == list(handover.ready())
    gates[0].set()
    while not first.done():
        time.sleep(0.01)
    assert handover.has_ready()
    assert [first, second] == list(handover.ready())
    assert handover.epoch("b") == 0
    assert 1 == handover.drop("b")  # one event held
    assert handover.epoch("b") == 1
    assert not handover.holds("b")
    gates[2].set()
    handover.close()
