"""The importer's reading side: listing shards, reading answers, failures, checkpoints.

:class:`ShardReading` is :class:`~streambridge.KinesisImporter`'s base: what it does with
``ListShards`` and ``GetRecords`` answers (well formed or not, errors and throttling), how a
shard backs off, ends, and saves its checkpoint, and how a page's sink outcome settles it
(counted and the checkpoint moved, or read again later). The importer adds the loop and the
hand-over to the sink (:mod:`streambridge.importer.importer`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

import attrs

from streambridge._aws import CallError, ClientShell
from streambridge._tally import Tally
from streambridge.deadletter import hand_back
from streambridge.errors import DeadLetterError, DeliveryError, FatalSinkError, MalformedAnswerError
from streambridge.importer.answers import RecordsPage
from streambridge.importer.calls import Fetched, ShardLister, refusal_error
from streambridge.importer.checkpoints import CheckpointStore, ShardCheckpoint
from streambridge.importer.conversion import RecordConverter
from streambridge.importer.handover import Handed, HandOver, Outcome
from streambridge.importer.results import ImportResult, SinkFailure, SkippedRecord, refusals_in
from streambridge.importer.settings import ImporterSettings
from streambridge.importer.shards import SKEW_MARGIN, Shard, ShardTable, iterator_request
from streambridge.metrics import Metrics
from streambridge.retry import THROTTLING_CODES, RetryPolicy

if TYPE_CHECKING:
    from mypy_boto3_kinesis import KinesisClient

    from streambridge.importer.sinks import Sink

__all__ = ["ShardReading"]

logger = logging.getLogger("streambridge.importer")

_Poll = Tally[ImportResult]


class ShardReading(ClientShell[ImporterSettings]):
    """Shards listed, answers read, failures sorted, checkpoints saved (the importer's base)."""

    client: KinesisClient
    checkpoints: CheckpointStore
    backoff: RetryPolicy
    shard_refresh_interval: float
    _table: ShardTable
    _lister: ShardLister
    _next_refresh: float
    sink: Sink | None
    on_skip: Callable[[SkippedRecord], object] | None
    _convert: RecordConverter
    _handover: HandOver | None
    metrics: Metrics
    _until: datetime | None
    _now: Callable[[], datetime]
    _epochs: dict[str, int]

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

    def _interpret(self, shard: Shard, fetched: Fetched, result: _Poll) -> RecordsPage | None:
        """One well-formed GetRecords answer, or None (the shard backs off or renews)."""
        if isinstance(fetched.iterator, CallError):
            self._read_error(shard, fetched.iterator, result)
            return None
        if fetched.iterator is not None:
            shard.iterator = fetched.iterator
        result.add("calls")
        self.metrics.observe("aws_call_latency", self.settings.stream_name, fetched.seconds)
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
        logger.warning(
            "shard %s: %s; asking again from the checkpoint",
            shard.shard_id,
            exc,
            extra={
                "stream": self.settings.stream_name,
                "shard": shard.shard_id,
                "sequence_number": shard.checkpoint.sequence_number,
                "error_code": "MalformedAnswer",
            },
        )
        result.add("malformed_answers")
        shard.iterator = None  # the iterator's position is unknown too
        self._back_off(shard)

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
            logger.warning(
                "shard %s is gone (trimmed past retention); moving on",
                shard.shard_id,
                extra={
                    "stream": self.settings.stream_name,
                    "shard": shard.shard_id,
                    "error_code": code,
                },
            )
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
        self.metrics.forget_shard(self.settings.stream_name, shard.shard_id)
        logger.info("shard %s read to its end", shard.shard_id)

    def _save(self, shard: Shard, checkpoint: ShardCheckpoint) -> None:
        self.checkpoints.save(self.settings.stream_name, shard.shard_id, checkpoint)
        shard.checkpoint = checkpoint

    def _fatal(self, failure: CallError) -> DeliveryError:
        """Turn a non-retryable error into a DeliveryError that says what to do."""
        return refusal_error(failure, self.settings.stream_name, self.client.meta.region_name)

    def _settle_ready(self, result: _Poll) -> None:
        """Take the outcomes of the sink calls that ended, each shard in its order."""
        if self._handover is not None:
            for handed in self._handover.ready():
                self._settle(handed, handed.outcome(), result)

    def _drain(self, result: _Poll) -> None:
        """Until every sink call in flight ended and was taken."""
        while self._handover is not None and self._handover.holds():
            self._handover.wait()
            self._settle_ready(result)

    def _settle(self, handed: Handed, outcome: Outcome, result: _Poll) -> bool:
        """A page's sink outcome: count it and move the checkpoint, or read it again later.

        True when the checkpoint moved past the page (or there was nothing to move).
        """
        shard, records, events, skipped = (
            handed.shard, handed.records, handed.events, handed.skipped,
        )  # fmt: skip
        if handed.seconds is not None:
            self.metrics.observe("sink_latency", self.settings.stream_name, handed.seconds)
        if outcome.error is not None:
            later = 0 if self._handover is None else self._handover.drop(shard.shard_id)
            shard.undelivered = len(events) + later
            if isinstance(outcome.error, FatalSinkError):
                raise outcome.error
            what = f"{len(events)} event(s) of shard {shard.shard_id} ({outcome.error!r})"
            logger.warning(
                "sink did not take %s; they will be read again",
                what,
                extra={
                    "stream": self.settings.stream_name,
                    "shard": shard.shard_id,
                    "sequence_number": shard.checkpoint.sequence_number,
                    "events": len(events),
                    "error_code": type(outcome.error).__name__,
                },
            )
            failure = SinkFailure(shard.shard_id, len(events), repr(outcome.error))
            result.append("sink_failures", failure)
            shard.iterator = None  # re-read from the checkpoint
            shard.done_until = False  # in this run too, when it was read to run(until=)'s end
            self._back_off(shard)
            return False
        refusals = refusals_in(outcome.answer)
        if refusals:  # whatever else a sink returns (None, uuids…) means "all taken"
            skipped.extend(self._convert.refused(shard.shard_id, list(records), refusals))
            refused = {r.event.uuid for r in refusals}
            events = [event for event in events if event.uuid not in refused]
        try:
            hand_back(self.on_skip, skipped, logger, "on_skip raised; the record stays skipped")
        except DeadLetterError:  # not handed back: the checkpoint stays before it, and we stop
            shard.iterator = None
            if self._handover is not None:
                self._handover.drop(shard.shard_id)
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
        if handed.next_iterator is None:
            shard.failures = 0
            self._finish(shard, result)
        return True

    def _advance(self, shard: Shard, page: RecordsPage, cut: bool = False) -> None:
        """Read on from the page's end; paced from the call's start, as AWS counts.

        ``cut``: the page was cut at ``run(until=)``'s instant; the shard is done for the
        run, and the next run reads from its checkpoint (what followed is read again).
        """
        shard.iterator = page.next_iterator
        if shard.iterator is not None:
            lag, began = page.millis_behind, shard.began
            shard.read(records=len(page.records), lag=lag, settings=self.settings, now=began)
        if cut:
            shard.iterator, shard.done_until = None, True
        elif self._until is not None and shard.at_tip and shard.began_at is not None:
            shard.done_until = shard.began_at - SKEW_MARGIN > self._until

    def _begin_read(self, shard: Shard) -> dict[str, Any] | None:
        """Note the read's start; GetShardIterator's parameters when the shard has none."""
        shard.began, shard.began_at = self._clock(), self._now()
        if self._handover is not None:
            self._epochs[shard.shard_id] = self._handover.epoch(shard.shard_id)
        if shard.iterator is not None:
            return None
        params, begin = iterator_request(shard, self.settings, self._now())
        if begin is not None:  # remember where we begin before we begin
            self._save(shard, begin)
        return params
