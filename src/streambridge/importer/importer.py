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
from typing import TYPE_CHECKING, Any

import attrs

from streambridge._aws import MAX_IN_FLIGHT, CallError, ClientShell, within_pool
from streambridge._tally import Tally
from streambridge._util import stop_function
from streambridge.deadletter import hand_back
from streambridge.errors import DeadLetterError, DeliveryError, FatalSinkError, MalformedAnswerError
from streambridge.importer.answers import RecordsPage
from streambridge.importer.calls import (
    Fetched,
    ShardLister,
    fetch,
    fetch_in_order,
    refusal_error,
)
from streambridge.importer.checkpoints import (
    CheckpointStore,
    MemoryCheckpointStore,
    ShardCheckpoint,
)
from streambridge.importer.conversion import RecordConverter
from streambridge.importer.events import PostHogEvent
from streambridge.importer.results import (
    ImportResult,
    ImportTotals,
    SinkFailure,
    SkippedRecord,
    refusals_in,
    skip_summary,
)
from streambridge.importer.settings import ImporterSettings
from streambridge.importer.shards import Shard, ShardTable, iterator_request
from streambridge.importer.sinks import Sink
from streambridge.retry import THROTTLING_CODES, RetryPolicy

if TYPE_CHECKING:
    from mypy_boto3_kinesis import KinesisClient

__all__ = ["KinesisImporter"]

logger = logging.getLogger("streambridge.importer")

_Poll = Tally[ImportResult]


class KinesisImporter(ClientShell[ImporterSettings]):
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

    # ------------------------------------------------------------------ public calls

    def poll(self) -> ImportResult:
        """Make one pass over the shards that are readable and due; never sleeps.

        Returns:
            The events of this pass, what was skipped, and each shard's lag.

        Raises:
            StreamNotFoundError: The stream does not exist.
            AccessDeniedError: A Kinesis permission is missing (the message names it).
            DeliveryError: Another error retrying cannot fix.
            DeadLetterError: ``on_skip`` could not write a dead letter (no checkpoint past it).
        """
        result = _Poll(ImportResult)
        if self._clock() >= self._next_refresh:
            self._refresh_shards()
        due = [s for s in self._table.readable() if self._clock() >= s.next_call]
        if self.max_in_flight == 1 or len(due) < 2 or self._budget is not None:  # noqa: PLR2004
            for shard in due:  # one at a time, so that a record budget is spent exactly
                if self._budget == 0:
                    break
                limit = self.settings.records_per_call
                limit = limit if self._budget is None else min(limit, self._budget)
                before, params = result.counts["records"], self._begin_read(shard)
                self._read(shard, result, fetch(self.client, shard.iterator, params, limit))
                if self._budget is not None:
                    self._budget -= result.counts["records"] - before
        else:
            self._read_together(due, result)
        if result.items["finished_shards"]:
            self._next_refresh = 0.0  # look for the children now
        for line in skip_summary(result.items["skipped"]):
            logger.warning("%s", line)
        return result.freeze()

    def run(
        self,
        *,
        stop: threading.Event | Callable[[], bool] | None = None,
        max_events: int | None = None,
        max_records: int | None = None,
        max_polls: int | None = None,
        until_caught_up: bool = False,
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
            on_poll: Called after each poll with its result and the totals so far (progress
                reports, metrics).

        Returns:
            Counts of what was done, and why the loop stopped.
        """
        should_stop = stop_function(stop)
        totals, self._budget = ImportTotals(), max_records
        self._table.forget_tips()  # "caught up" means read at the tip in this run
        try:
            while True:
                if should_stop():
                    return self._ended(totals, "stop")
                result = self.poll()
                totals = totals.add(result)
                if on_poll is not None:
                    on_poll(result, totals)
                if max_events is not None and totals.events >= max_events:
                    return self._ended(totals, "max_events")
                if self._budget == 0:
                    return self._ended(totals, "max_records")
                if max_polls is not None and totals.polls >= max_polls:
                    return self._ended(totals, "max_polls")
                if until_caught_up and self._table.caught_up():
                    return self._ended(totals, "caught_up")
                wait = self._table.next_due(self._next_refresh) - self._clock()
                if wait > 0:
                    self._sleep(min(wait, 1.0))  # short naps, so that `stop` is seen quickly
        finally:
            self._budget = None  # a later poll() reads as much as it likes

    def _ended(self, totals: ImportTotals, because: str) -> ImportTotals:
        return attrs.evolve(totals, stopped_because=because, undelivered=self.undelivered)

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

    # ------------------------------------------------------------------ shards

    def _refresh_shards(self) -> None:
        """List the stream's shards (paginated) and decide where new ones start.

        A transient failure — throttling, a connection error, a malformed answer — keeps the
        last listing and tries again after the longest backoff.
        """
        listed = self._lister.list()
        if isinstance(listed, CallError) and not listed.retryable:
            raise self._fatal(listed) from listed.error
        if isinstance(listed, CallError):
            self._keep_listing(listed)
            return
        saved = self.checkpoints.load(self.settings.stream_name)
        start = self.settings.start_position
        for shard in self._table.update(listed, saved, start_position=start):
            self._save(shard, shard.checkpoint)  # closed before we began at LATEST: done
        self._next_refresh = self._clock() + self.shard_refresh_interval

    def _keep_listing(self, failure: CallError) -> None:
        delay = self._lister.retry_in(failure, self.backoff, self._clock(), self._random)
        self._next_refresh = self._clock() + delay

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
        """One GetRecords on one shard, then sink and checkpoint."""
        page = self._interpret(shard, fetched, result)
        if page is None:
            return
        records = page.records
        result.maps["lag"][shard.shard_id] = page.millis_behind
        events, skipped = self._convert.convert(shard.shard_id, records)
        if events and self.sink is not None:
            accepted = self._hand_over(shard, records, events, skipped, result)
            if accepted is None:
                return
            events = accepted
        try:
            hand_back(self.on_skip, skipped, logger, "on_skip raised; the record stays skipped")
        except DeadLetterError:  # not handed back: the checkpoint stays before it, and we stop
            shard.iterator = None
            raise
        shard.undelivered = 0
        result.add("records", len(records))
        result.add("event_count", len(events))
        if self.sink is None:  # with a sink the events are there, not held here
            result.extend("events", events)
        result.extend("skipped", skipped)
        if records:
            sequence = records[-1]["SequenceNumber"]
            self._save(shard, attrs.evolve(shard.checkpoint, sequence_number=sequence))
        shard.iterator = page.next_iterator
        if shard.iterator is None:
            shard.failures = 0
            self._finish(shard, result)
            return
        lag, began = page.millis_behind, shard.began  # paced from the call's start, as AWS counts
        shard.read(records=len(records), lag=lag, settings=self.settings, now=began)

    def _begin_read(self, shard: Shard) -> dict[str, Any] | None:
        """Note the read's start; GetShardIterator's parameters when the shard has none."""
        shard.began = self._clock()
        if shard.iterator is not None:
            return None
        params, begin = iterator_request(shard, self.settings, self._now())
        if begin is not None:  # remember where we begin before we begin
            self._save(shard, begin)
        return params

    def _interpret(self, shard: Shard, fetched: Fetched, result: _Poll) -> RecordsPage | None:
        """One well-formed GetRecords answer, or None (the shard backs off or renews)."""
        if isinstance(fetched.iterator, CallError):
            self._read_error(shard, fetched.iterator, result)
            return None
        if fetched.iterator is not None:
            shard.iterator = fetched.iterator
        result.add("calls")
        page = fetched.page
        if isinstance(page, CallError):
            self._read_error(shard, page, result)
        if not isinstance(page, RecordsPage):  # a failure, or no page without an iterator
            return None
        if page.next_iterator is None and not self._confirmed_closed(shard):
            unbelieved = MalformedAnswerError(
                f"GetRecords answered 200 with no NextShardIterator for shard "
                f"{shard.shard_id}, which the shard listing says is open: the answer is "
                f"not believed",
                operation="GetRecords",
            )
            self._malformed(shard, unbelieved, result)
            return None
        return page

    def _malformed(self, shard: Shard, exc: object, result: _Poll) -> None:
        logger.warning("shard %s: %s; asking again from the checkpoint", shard.shard_id, exc)
        result.add("malformed_answers")
        shard.iterator = None  # the iterator's position is unknown too
        self._back_off(shard)

    def _hand_over(
        self,
        shard: Shard,
        records: list[Any],
        events: list[PostHogEvent],
        skipped: list[SkippedRecord],
        result: _Poll,
    ) -> list[PostHogEvent] | None:
        """Give the events to the sink: those it accepted, or None when it failed."""
        assert self.sink is not None  # noqa: S101 - the caller checked
        try:
            answer = self.sink(events)
        except FatalSinkError:
            shard.undelivered = len(events)
            raise
        except Exception as exc:  # noqa: BLE001 - any sink failure: re-read later
            what = f"{len(events)} event(s) of shard {shard.shard_id} ({exc!r})"
            logger.warning("sink did not take %s; they will be read again", what)
            result.append("sink_failures", SinkFailure(shard.shard_id, len(events), repr(exc)))
            shard.undelivered = len(events)
            shard.iterator = None  # re-read from the checkpoint
            self._back_off(shard)
            return None
        refusals = refusals_in(answer)
        if not refusals:  # whatever else a sink returns (None, uuids…) means "all taken"
            return events
        skipped.extend(self._convert.refused(shard.shard_id, records, refusals))
        refused = {r.event.uuid for r in refusals}
        return [event for event in events if event.uuid not in refused]

    def _confirmed_closed(self, shard: Shard) -> bool:
        """Whether the shard listing says the shard is closed (listing again if need be)."""
        if not shard.closed:
            self._refresh_shards()
        return shard.closed

    def _read_error(self, shard: Shard, failure: CallError, result: _Poll) -> None:
        code = failure.code
        if failure.malformed:
            self._malformed(shard, failure.message, result)
        elif failure.connection:
            logger.debug("shard %s: %s; backing off", shard.shard_id, failure.message)
            self._back_off(shard)
        elif code == "ExpiredIteratorException":
            logger.info(
                "shard %s: iterator expired; renewing it from the checkpoint", shard.shard_id
            )
            result.add("expired_iterators")
            shard.iterator = None
        elif code == "ResourceNotFoundException" and not self._stream_still_there(shard):
            logger.warning("shard %s is gone (trimmed past retention); moving on", shard.shard_id)
            self._finish(shard, result)
        elif failure.retryable:
            if code in THROTTLING_CODES:
                result.add("throttled")
            self._back_off(shard)
        else:
            raise self._fatal(failure) from failure.error

    def _stream_still_there(self, shard: Shard) -> bool:
        """After a ResourceNotFound: is the shard still listed (so the error is real)?"""
        self._refresh_shards()  # raises StreamNotFoundError when the stream itself is gone
        return shard.shard_id in self._table.listed

    def _back_off(self, shard: Shard) -> None:
        shard.back_off(
            backoff=self.backoff,
            min_interval=self.settings.min_call_interval,
            now=self._clock(),
            random=self._random,
        )

    def _finish(self, shard: Shard, result: _Poll) -> None:
        self._save(shard, attrs.evolve(shard.checkpoint, finished=True))
        shard.iterator = None
        result.append("finished_shards", shard.shard_id)
        logger.info("shard %s read to its end", shard.shard_id)

    def _save(self, shard: Shard, checkpoint: ShardCheckpoint) -> None:
        self.checkpoints.save(self.settings.stream_name, shard.shard_id, checkpoint)
        shard.checkpoint = checkpoint

    def _fatal(self, failure: CallError) -> DeliveryError:
        """Turn a non-retryable error into a DeliveryError that says what to do."""
        return refusal_error(failure, self.settings.stream_name, self.client.meta.region_name)
