"""KinesisImporter: a Kinesis Data Stream to PostHog events, with checkpoints and no gaps.

The shell around the pure modules of this package — the I/O loop only, each step build -> call
-> interpret -> decide. It lists shards into the shard table (:mod:`~streambridge.importer.shards`:
parents before children, where each shard starts, pacing), reads them with ``GetRecords``
(:func:`streambridge._aws.attempt`, answers read by :mod:`~streambridge.importer.answers`),
converts the records (:mod:`~streambridge.importer.conversion`), hands the events to the sink,
and only then moves the shard's checkpoint (:mod:`~streambridge.importer.checkpoints`).
Delivery is at-least-once; event uuids are deterministic, so PostHog drops the duplicates a
retry may bring.

Not thread-safe; one importer per stream and process (two importers on the same shards would
both import them).
"""

from __future__ import annotations

import logging
import random as _random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import TYPE_CHECKING

import attrs

from streambridge._aws import MAX_IN_FLIGHT, within_pool
from streambridge._tally import Tally
from streambridge._util import stop_function
from streambridge.importer.calls import (
    Fetched,
    ShardLister,
    fetch,
    fetch_in_order,
)
from streambridge.importer.checkpoints import (
    CheckpointStore,
    MemoryCheckpointStore,
    ShardCheckpoint,
)
from streambridge.importer.conversion import RecordConverter
from streambridge.importer.handover import Handed, HandOver, Outcome
from streambridge.importer.reading import ShardReading
from streambridge.importer.results import (
    ImportResult,
    ImportTotals,
    SkippedRecord,
    skip_summary,
)
from streambridge.importer.settings import ImporterSettings
from streambridge.importer.shards import (
    Shard,
    ShardTable,
    records_until,
)
from streambridge.importer.sinks import Sink, calls_in_flight
from streambridge.metrics import IMPORTER_FIELDS, Metrics
from streambridge.retry import RetryPolicy

if TYPE_CHECKING:
    from mypy_boto3_kinesis import KinesisClient

__all__ = ["KinesisImporter"]

logger = logging.getLogger("streambridge.importer")

_Poll = Tally[ImportResult]


class KinesisImporter(ShardReading):
    """Import a Kinesis Data Stream as PostHog events, as PostHog's Kinesis app meant to.

    Example (``settings`` an :class:`~streambridge.ImporterSettings`)::

        importer = KinesisImporter(boto3.client("kinesis"), settings, sink=PostHogSink(
            api_key="phc_...", host="https://eu.i.posthog.com"),
            checkpoints=SQLiteCheckpointStore("kinesis.db"))
        importer.run(stop=stop_event)
    """

    service = "kinesis"
    client: KinesisClient

    def __init__(
        self,
        client: KinesisClient,
        settings: ImporterSettings,
        *,
        sink: Sink | None = None,
        checkpoints: CheckpointStore | None = None,
        on_skip: Callable[[SkippedRecord], object] | None = None,
        backoff: RetryPolicy = RetryPolicy(base_delay=1.0, max_delay=30.0),  # noqa: B008 - frozen
        shard_refresh_interval: float = 30.0,
        max_in_flight: int = MAX_IN_FLIGHT,
        sink_calls_in_flight: int | None = None,
        metrics: Metrics | None = None,
        sleep: Callable[[float], object] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
        random: Callable[[], float] = _random.random,
    ) -> None:
        """Create an importer.

        Args:
            client: A boto3 Kinesis client (``boto3.client("kinesis")``).
            settings: Stream, event key, mappings, start position and pacing.
            sink: Receives each shard's events of a poll (never an empty sequence); the
                shard's checkpoint moves only once it returns, so it must return only once
                the destination has the events (:class:`~streambridge.PostHogSink` does).
                If it raises, the events come again later; a
                :class:`~streambridge.errors.FatalSinkError` stops the importer instead. It
                may return a list of :class:`~streambridge.SinkRefusal`: events it can never
                deliver, counted as skipped records. Without a sink, events are only
                returned by :meth:`poll`.
            checkpoints: Where positions are kept (default: in memory, lost at exit).
            on_skip: Called with each record that cannot become an event; what it raises is
                logged, but a ``DeadLetterError`` (a dead letter not written) is raised, with
                the shard's checkpoint left before the record.
            backoff: Waits after throttling or a transient error, per shard (its delay
                schedule is used; the importer never gives up on a shard).
            shard_refresh_interval: Seconds between two ``ListShards`` (sooner when a shard
                ends).
            max_in_flight: Shards read at once (one call in flight per shard; events are
                still handed to the sink shard by shard, in order); 1 reads one at a time.
                At most the client's ``max_pool_connections`` (botocore's default: 10).
            sink_calls_in_flight: Sink calls at once, from a pool of threads (default: the
                sink's ``calls_in_flight``, 32 for :class:`~streambridge.PostHogSink`; 1 for
                any other callable, called in the importer's thread). A shard's next page may
                be read and handed over while its last is in flight, but its checkpoint moves
                only past pages the sink confirmed, in order.
            metrics: Where the importer's measurements go (default: a
                :class:`~streambridge.metrics.Metrics` of its own, :attr:`metrics`); several
                engines may share one. ``Metrics(enabled=False)`` turns them off.
            sleep: Waits in :meth:`run` (inject a fake in tests).
            clock: Monotonic seconds, for pacing.
            now: The wall clock, for where a ``LATEST`` start began.
            random: Floats in [0, 1) for jitter.
        """
        super().__init__(client, settings, sleep=sleep, clock=clock, random=random)
        self.sink = sink
        self.checkpoints: CheckpointStore = (
            MemoryCheckpointStore() if checkpoints is None else checkpoints
        )
        self.on_skip = on_skip
        self.backoff = backoff
        self.shard_refresh_interval = shard_refresh_interval
        self._now = now
        self._convert = RecordConverter(settings)
        self._table = ShardTable()
        self._next_refresh = 0.0
        self._lister = ShardLister(client, settings.stream_name)
        self.max_in_flight = within_pool(client, max_in_flight, logger)
        self._pool: ThreadPoolExecutor | None = None
        self._budget: int | None = None  # records left to read under run(max_records=)
        self._until: datetime | None = None  # the instant of run(until=)
        calls = calls_in_flight(sink) if sink_calls_in_flight is None else sink_calls_in_flight
        self._handover = HandOver(sink, calls) if sink is not None and calls > 1 else None
        self._epochs: dict[str, int] = {}  # each read's hand-over epoch, from its start
        #: The importer's measurements (docs/operations.md).
        self.metrics = Metrics() if metrics is None else metrics
        self._tap = self.metrics.tap(IMPORTER_FIELDS, settings.stream_name)

    # ------------------------------------------------------------------ public calls

    def poll(self) -> ImportResult:
        """Make one pass over the shards that are readable and due; never sleeps.

        Returns once every sink call of the pass ended (:meth:`run` keeps them in flight from
        one pass to the next).

        Returns:
            The events of this pass, what was skipped, and each shard's lag.

        Raises:
            StreamNotFoundError: The stream does not exist.
            AccessDeniedError: A Kinesis permission is missing (the message names it).
            DeliveryError: Another error retrying cannot fix.
            DeadLetterError: ``on_skip`` could not write a dead letter (no checkpoint past it).
        """
        return self._poll(drain=True)

    def _poll(self, *, drain: bool) -> ImportResult:
        result = _Poll(ImportResult, self._tap)
        self._settle_ready(result)
        if self._clock() >= self._next_refresh:
            self._refresh_shards()
        due = [s for s in self._table.readable() if self._due(s)]
        if self.max_in_flight == 1 or len(due) < 2 or self._budget is not None:  # noqa: PLR2004
            for shard in due:  # one at a time, so that a record budget is spent exactly
                if self._budget == 0:
                    break
                limit = self.settings.records_per_call
                limit = limit if self._budget is None else min(limit, self._budget)
                before, params = result.counts["records"], self._begin_read(shard)
                self._read(shard, result, fetch(self.client, shard.iterator, params, limit))
                if self._budget is not None:
                    self._drain(result)  # counted once confirmed: the budget is exact
                    self._budget -= result.counts["records"] - before
        else:
            self._read_together(due, result)
        if drain:
            self._drain(result)
        if self._handover is not None:
            self.metrics.set_in_flight(self.settings.stream_name, len(self._handover.in_flight()))
        if result.items["finished_shards"]:
            self._next_refresh = 0.0  # look for the children now
        for line in skip_summary(result.items["skipped"]):
            logger.warning("%s", line, extra={"stream": self.settings.stream_name})
        return result.freeze()

    def _due(self, shard: Shard) -> bool:
        return (
            not shard.done_until and not self._blocked(shard) and self._clock() >= shard.next_call
        )

    def run(
        self,
        *,
        stop: threading.Event | Callable[[], bool] | None = None,
        max_events: int | None = None,
        max_records: int | None = None,
        max_polls: int | None = None,
        until_caught_up: bool = False,
        until: datetime | None = None,
        on_poll: Callable[[ImportResult, ImportTotals], object] | None = None,
    ) -> ImportTotals:
        """Poll until told to stop; sleep between polls until a shard is due.

        Args:
            stop: An event (or a function) that ends the loop when set (returns True).
            max_events: Stop once at least this many events were produced.
            max_records: Stop after exactly this many records (reads are limited to what is
                left, one shard at a time): the checkpoints end at the last record read.
            max_polls: Stop after this many polls.
            until_caught_up: Stop once every shard was read at its tip in this run (0 ms
                behind, short read).
            until: An instant (timezone-aware): each shard is read up to the first record
                that arrived after it and stops there, its checkpoint on the last record at
                or before it (or on its tip, once reading began past the instant); the run
                ends when every shard got there or ended. With an ``AT_TIMESTAMP`` start,
                an exact window of the stream.
            on_poll: Called after each poll with its result and the totals so far (progress
                reports, metrics).

        Returns:
            Counts of what was done, and why the loop stopped.
        """
        should_stop = stop_function(stop)
        if until is not None and until.utcoffset() is None:
            raise ValueError(f"until must be timezone-aware, got {until.isoformat()}")
        totals, self._budget, self._until = ImportTotals(), max_records, until
        self._table.forget_tips()  # "caught up" means read at the tip in this run
        try:
            while True:
                if should_stop():
                    return self._ended(totals, "stop", on_poll)
                result = self._poll(drain=False)
                totals = totals.add(result)
                if on_poll is not None:
                    on_poll(result, totals)
                if max_events is not None and totals.events >= max_events:
                    return self._ended(totals, "max_events", on_poll)
                if self._budget == 0:
                    return self._ended(totals, "max_records", on_poll)
                if max_polls is not None and totals.polls >= max_polls:
                    return self._ended(totals, "max_polls", on_poll)
                held = self._handover is not None and self._handover.holds()
                if until_caught_up and not held and self._table.caught_up():
                    return self._ended(totals, "caught_up", on_poll)
                if until is not None and not held and self._table.at_until():
                    return self._ended(totals, "until", on_poll)
                self._pause(held)
        except BaseException:
            if self._handover is not None:  # nothing held is confirmed now: read it again
                self._handover.drop_all()
                self._handover.close()
            raise
        finally:
            self._budget = self._until = None  # a later poll() reads as much as it likes

    def _pause(self, held: bool) -> None:
        """Until a shard is due, or a sink call in flight ends (a shard may be read on)."""
        readable = [s for s in self._table.readable() if not (s.done_until or self._blocked(s))]
        due = min([self._next_refresh, *(s.next_call for s in readable)])
        wait = min(due - self._clock(), 1.0)  # short naps, so that `stop` is seen quickly
        if wait <= 0:
            return
        handover = self._handover if held else None
        if handover is not None and (handover.has_ready() or handover.wait(wait)):
            return  # an outcome to take (a blocked shard may be read on)
        left = min(due - self._clock(), wait)  # with an injected clock, time moves only here
        if left > 0:
            self._sleep(left)

    def _blocked(self, shard: Shard) -> bool:
        return self._handover is not None and self._handover.blocked(shard)

    def _ended(
        self,
        totals: ImportTotals,
        because: str,
        on_poll: Callable[[ImportResult, ImportTotals], object] | None,
    ) -> ImportTotals:
        """The totals of a run, once every sink call in flight ended and was taken."""
        if self._handover is not None and self._handover.holds():
            last = _Poll(ImportResult, self._tap)
            self._drain(last)
            result = last.freeze()
            totals = attrs.evolve(totals.add(result), polls=totals.polls)
            if on_poll is not None:
                on_poll(result, totals)
        if self._handover is not None:
            self._handover.close()  # the sink threads go; the next run makes them again
        return attrs.evolve(totals, stopped_because=because, undelivered=self.undelivered)

    def window_progress(self) -> tuple[int, int]:
        """Under ``run(until=)``: (shards read up to the instant or ended, shards known)."""
        shards = self._table.shards.values()
        return sum(s.done_until or s.checkpoint.finished for s in shards), len(shards)

    @property
    def undelivered(self) -> int:
        """Events read whose sink call failed and that were not delivered since.

        Their checkpoints did not move past them: the importer (or the next run) reads them
        again. Non-zero when a run stops during a destination outage.
        """
        return self._table.undelivered

    @property
    def shards(self) -> dict[str, ShardCheckpoint]:
        """Each known shard's checkpoint."""
        return {shard_id: shard.checkpoint for shard_id, shard in self._table.shards.items()}

    def _read_together(self, due: list[Shard], result: _Poll) -> None:
        """Read up to ``max_in_flight`` shards at once; hand over their events in order."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.max_in_flight, thread_name_prefix="streambridge")
        reads = fetch_in_order(
            self._pool,
            self.client,
            due,
            prepare=self._begin_read,
            limit=self.settings.records_per_call,
            window=self.max_in_flight,
        )
        for shard, fetched in reads:
            self._read(shard, result, fetched)

    def _read(self, shard: Shard, result: _Poll, fetched: Fetched) -> None:
        """One GetRecords on one shard, then hand over; the checkpoint moves once confirmed."""
        handover = self._handover
        if handover is not None:
            while handover.full():  # room for one more sink call first
                handover.wait()
                self._settle_ready(result)
            if handover.epoch(shard.shard_id) != self._epochs.get(shard.shard_id, 0):
                return  # an earlier page failed meanwhile: this read is stale, read again
        page = self._interpret(shard, fetched, result)
        if page is None:
            return
        cut = None if self._until is None else records_until(page.records, self._until)
        if cut is not None:
            page = attrs.evolve(page, records=page.records[:cut])
        result.maps["lag"][shard.shard_id] = page.millis_behind
        self.metrics.set_lag(self.settings.stream_name, shard.shard_id, page.millis_behind)
        events, skipped = self._convert.convert(shard.shard_id, page.records)
        handed = Handed(shard, page.records, events, skipped, page.next_iterator)
        if handover is not None and (events or handover.holds(shard.shard_id)):
            handover.submit(handed)  # taken in order, later (_settle_ready)
            self._advance(shard, page, cut is not None)
            return
        outcome = Outcome()
        if events and self.sink is not None:
            start = time.perf_counter()
            try:
                outcome = Outcome(answer=self.sink(events))
            except Exception as exc:  # noqa: BLE001 - sorted in _settle
                outcome = Outcome(error=exc)
            handed.seconds = time.perf_counter() - start
        if self._settle(handed, outcome, result):
            self._advance(shard, page, cut is not None)
