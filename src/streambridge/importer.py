"""KinesisImporter: a Kinesis Data Stream to PostHog events, with checkpoints and no gaps.

The shell around the pure core: it lists shards, reads them with ``GetRecords``, decodes and
converts each record (:mod:`streambridge.encoding`, :mod:`streambridge.posthog`), hands the
events to the sink, and only then moves the shard's checkpoint
(:mod:`streambridge.checkpoints`). Delivery is at-least-once; event uuids are deterministic, so
PostHog drops the duplicates a retry may bring.

Shards: a child shard is read only after its parents were read to their end (a null
``NextShardIterator``), so per-key order survives resharding. A shard with no checkpoint starts
at ``TRIM_HORIZON`` when one of its parents is already known (it was born while we followed the
stream), else at the configured start position. Where reading began is saved with the shard, so
a restart — or an expired iterator — before the first record resumes there, never at ``LATEST``.

Pacing: at most one ``GetRecords`` per shard every ``min_call_interval`` (5 per second by
default); a shard that is caught up is polled every ``idle_poll_interval`` (1 s); a throttled shard
backs off alone, with capped exponential backoff and jitter.

Not thread-safe; one importer per stream and process (two importers on the same shards would
both import them).
"""

from __future__ import annotations

import logging
import random as _random
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import attrs
from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from streambridge._aws import PARSER_ERRORS, client_for, error_details, fatal_error, unparsable
from streambridge.answers import RecordsPage, records_page, shard_iterator, shards_page
from streambridge.checkpoints import CheckpointStore, MemoryCheckpointStore, ShardCheckpoint
from streambridge.encoding import decode_record
from streambridge.errors import (
    DecodeError,
    DeliveryError,
    FatalSinkError,
    MalformedAnswerError,
    UnusableRecordError,
)
from streambridge.keys import parse_path
from streambridge.posthog import PostHogEvent, event_uuid, to_event
from streambridge.results import (
    ImportResult,
    ImportTotals,
    SinkFailure,
    SinkRefusal,
    SkippedRecord,
)
from streambridge.retry import RetryPolicy, is_retryable
from streambridge.settings import ImporterSettings

if TYPE_CHECKING:
    from mypy_boto3_kinesis import KinesisClient

__all__ = ["KinesisImporter", "Sink"]

logger = logging.getLogger("streambridge.importer")

Sink = Callable[[Sequence[PostHogEvent]], object]
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
#: A LATEST start is remembered this much earlier, so a resume at that time (AT_TIMESTAMP)
#: cannot miss records because of clock skew between this machine and AWS.
SKEW_MARGIN = timedelta(seconds=5)


def _unexpected(exc: Exception) -> str:
    """The skip reason for an error no rule foresaw (a bug of ours: please report it)."""
    return f"cannot be converted ({type(exc).__name__}: {str(exc)[:200]})"


@attrs.define
class _Shard:
    """What the importer knows of one shard."""

    shard_id: str
    parents: tuple[str, ...]
    closed: bool
    inherits: bool  # a parent was followed before this shard was first seen: read it all
    checkpoint: ShardCheckpoint = attrs.Factory(ShardCheckpoint)
    iterator: str | None = None
    next_call: float = 0.0
    failures: int = 0
    at_tip: bool = False  # last read: 0 ms behind and short of the limit
    undelivered: int = 0  # events of the last read that the sink did not take


@attrs.define
class _Poll:
    """The mutable accumulator behind one ImportResult."""

    events: list[PostHogEvent] = attrs.Factory(list)
    skipped: list[SkippedRecord] = attrs.Factory(list)
    lag: dict[str, int] = attrs.Factory(dict)
    records: int = 0
    calls: int = 0
    sink_failures: list[SinkFailure] = attrs.Factory(list)
    finished: list[str] = attrs.Factory(list)
    expired: int = 0
    throttled: int = 0
    malformed: int = 0

    def freeze(self) -> ImportResult:
        return ImportResult(
            events=tuple(self.events),
            skipped=tuple(self.skipped),
            lag=dict(self.lag),
            records=self.records,
            calls=self.calls,
            sink_failures=tuple(self.sink_failures),
            finished_shards=tuple(self.finished),
            expired_iterators=self.expired,
            throttled=self.throttled,
            malformed_answers=self.malformed,
        )


class KinesisImporter:
    """Import a Kinesis Data Stream as PostHog events, as PostHog's Kinesis app meant to.

    Example::

        importer = KinesisImporter(
            boto3.client("kinesis"),
            ImporterSettings(stream_name="events", event_key="properties.eventName",
                             additional_property_mappings="properties.userId:distinct_id"),
            sink=PostHogSink(api_key="phc_...", host="https://eu.i.posthog.com"),
            checkpoints=SQLiteCheckpointStore("kinesis.db"),
        )
        importer.run(stop=stop_event)
    """

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
            on_skip: Called with each record that cannot become an event.
            backoff: Waits after throttling or a transient error, per shard (its delay
                schedule is used; the importer never gives up on a shard).
            shard_refresh_interval: Seconds between two ``ListShards`` (sooner when a shard
                ends).
            sleep: Waits in :meth:`run` (inject a fake in tests).
            clock: Monotonic seconds, for pacing.
            now: The wall clock, for where a ``LATEST`` start began.
            random: Floats in [0, 1) for jitter.
        """
        self.client = client
        self.settings = settings
        self.sink = sink
        self.checkpoints: CheckpointStore = (
            MemoryCheckpointStore() if checkpoints is None else checkpoints
        )
        self.on_skip = on_skip
        self.backoff = backoff
        self.shard_refresh_interval = shard_refresh_interval
        self._sleep = sleep
        self._clock = clock
        self._now = now
        self._random = random
        self._event_key = parse_path(settings.event_key)
        self._shards: dict[str, _Shard] = {}
        self._listed: set[str] = set()
        self._next_refresh = 0.0

    @classmethod
    def from_settings(
        cls,
        settings: ImporterSettings,
        *,
        session: Any = None,
        endpoint_url: str | None = None,
        **options: Any,
    ) -> KinesisImporter:
        """Build the boto3 client from the settings (region, optional keys), then the importer."""
        client = client_for("kinesis", settings, session=session, endpoint_url=endpoint_url)
        return cls(client, settings, **options)

    # ------------------------------------------------------------------ public calls

    def poll(self) -> ImportResult:
        """Make one pass over the shards that are readable and due; never sleeps.

        Returns:
            The events of this pass, what was skipped, and each shard's lag.

        Raises:
            StreamNotFoundError: The stream does not exist.
            AccessDeniedError: A Kinesis permission is missing (the message names it).
            DeliveryError: Another error retrying cannot fix.
        """
        result = _Poll()
        if self._clock() >= self._next_refresh:
            self._refresh_shards()
        for shard in self._readable():
            if self._clock() >= shard.next_call:
                self._read(shard, result)
        if result.finished:
            self._next_refresh = 0.0  # look for the children now
        self._log_skips(result.skipped)
        return result.freeze()

    def run(
        self,
        *,
        stop: threading.Event | Callable[[], bool] | None = None,
        max_events: int | None = None,
        max_polls: int | None = None,
        until_caught_up: bool = False,
        on_poll: Callable[[ImportResult, ImportTotals], object] | None = None,
    ) -> ImportTotals:
        """Poll until told to stop; sleep between polls until a shard is due.

        Args:
            stop: An event (or a function) that ends the loop when set (returns True).
            max_events: Stop once at least this many events were produced.
            max_polls: Stop after this many polls.
            until_caught_up: Stop once every shard is at its tip (0 ms behind, short read).
            on_poll: Called after each poll with its result and the totals so far (progress
                reports, metrics).

        Returns:
            Counts of what was done, and why the loop stopped.
        """
        should_stop: Callable[[], bool]
        if stop is None:
            should_stop = lambda: False  # noqa: E731
        elif isinstance(stop, threading.Event):
            should_stop = stop.is_set
        else:
            should_stop = stop
        totals = ImportTotals()
        while True:
            if should_stop():
                return self._ended(totals, "stop")
            result = self.poll()
            totals = totals.add(result)
            if on_poll is not None:
                on_poll(result, totals)
            if max_events is not None and totals.events >= max_events:
                return self._ended(totals, "max_events")
            if max_polls is not None and totals.polls >= max_polls:
                return self._ended(totals, "max_polls")
            if until_caught_up and self._caught_up():
                return self._ended(totals, "caught_up")
            wait = self._next_due() - self._clock()
            if wait > 0:
                self._sleep(min(wait, 1.0))  # short naps, so that `stop` is seen quickly

    def _ended(self, totals: ImportTotals, because: str) -> ImportTotals:
        return attrs.evolve(totals, stopped_because=because, undelivered=self.undelivered)

    @property
    def undelivered(self) -> int:
        """Events read whose sink call failed and that were not delivered since.

        Their checkpoints did not move past them: the importer (or the next run) reads them
        again. Non-zero when a run stops during a destination outage.
        """
        return sum(shard.undelivered for shard in self._shards.values())

    @property
    def shards(self) -> dict[str, ShardCheckpoint]:
        """Each known shard's checkpoint."""
        return {shard_id: shard.checkpoint for shard_id, shard in self._shards.items()}

    # ------------------------------------------------------------------ shards

    def _refresh_shards(self) -> None:
        """List the stream's shards (paginated) and decide where new ones start.

        A transient failure — throttling, a connection error, a malformed answer — keeps the
        last listing and tries again after the longest backoff.
        """
        listed: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"StreamName": self.settings.stream_name}
        while True:
            try:
                page = self.client.list_shards(**kwargs)
            except PARSER_ERRORS as exc:
                self._keep_listing(unparsable("ListShards", exc))
                return
            except ClientError as exc:
                code, _, status = error_details(exc)
                if code == "ExpiredNextTokenException":
                    listed, kwargs = [], {"StreamName": self.settings.stream_name}
                    continue
                if is_retryable(code, status):
                    self._keep_listing(f"ListShards failed ({code})")
                    return
                raise self._fatal(exc, "ListShards") from exc
            except (BotoConnectionError, HTTPClientError) as exc:
                self._keep_listing(f"ListShards failed ({exc})")
                return
            try:
                shards, token = shards_page(page)
            except MalformedAnswerError as exc:
                self._keep_listing(exc)
                return
            listed.extend(shards)
            if not token:
                break
            kwargs = {"NextToken": token}
        saved = self.checkpoints.load(self.settings.stream_name)
        known_before = set(self._shards) | set(saved)
        self._listed = {item["ShardId"] for item in listed}
        for item in listed:
            shard_id = item["ShardId"]
            closed = "EndingSequenceNumber" in item.get("SequenceNumberRange", {})
            if shard_id in self._shards:
                self._shards[shard_id].closed = closed
                continue
            parents = tuple(
                p for p in (item.get("ParentShardId"), item.get("AdjacentParentShardId")) if p
            )
            inherits = any(p in known_before for p in parents)
            shard = _Shard(
                shard_id, parents, closed, inherits, saved.get(shard_id, ShardCheckpoint())
            )
            self._shards[shard_id] = shard
            untouched = shard.checkpoint == ShardCheckpoint()
            if untouched and closed and not inherits and self.settings.start_position == "LATEST":
                # closed before we began at LATEST: nothing in it comes after our start
                self._save(shard, attrs.evolve(shard.checkpoint, finished=True))
        self._next_refresh = self._clock() + self.shard_refresh_interval

    def _keep_listing(self, why: object) -> None:
        logger.warning("%s; keeping the last listing", why)
        self._next_refresh = self._clock() + self.backoff.max_delay

    def _readable(self) -> list[_Shard]:
        """Unfinished shards whose parents are finished (or no longer listed: trimmed)."""
        out = []
        for shard in self._shards.values():
            if shard.checkpoint.finished:
                continue
            parents = [self._shards.get(p) for p in shard.parents]
            if all(p is None or p.checkpoint.finished for p in parents):
                out.append(shard)
        return out

    def _next_due(self) -> float:
        due = [s.next_call for s in self._readable()]
        return min([self._next_refresh, *due])

    def _caught_up(self) -> bool:
        """Every readable shard's last read was at the tip of the shard, without failure."""
        readable = self._readable()
        return bool(readable) and all(s.failures == 0 and s.at_tip for s in readable)

    # ------------------------------------------------------------------ reading

    def _iterator(self, shard: _Shard) -> str:
        """A new iterator: after the checkpoint, else where reading began, else the start."""
        checkpoint = shard.checkpoint
        kwargs: dict[str, Any] = {
            "StreamName": self.settings.stream_name,
            "ShardId": shard.shard_id,
        }
        if checkpoint.sequence_number is not None:
            kwargs["ShardIteratorType"] = "AFTER_SEQUENCE_NUMBER"
            kwargs["StartingSequenceNumber"] = checkpoint.sequence_number
        elif checkpoint.start == "TRIM_HORIZON":
            kwargs["ShardIteratorType"] = "TRIM_HORIZON"
        elif checkpoint.start is not None:
            kwargs["ShardIteratorType"] = "AT_TIMESTAMP"
            kwargs["Timestamp"] = datetime.fromisoformat(checkpoint.start)
        else:  # first time: remember where we begin before we begin
            start = self.settings.start_position
            if shard.inherits or start == "TRIM_HORIZON":
                kwargs["ShardIteratorType"] = begin = "TRIM_HORIZON"
            elif isinstance(start, datetime):
                kwargs["ShardIteratorType"] = "AT_TIMESTAMP"
                kwargs["Timestamp"] = start
                begin = start.isoformat()
            else:
                kwargs["ShardIteratorType"] = "LATEST"
                begin = (self._now() - SKEW_MARGIN).isoformat()
            self._save(shard, attrs.evolve(checkpoint, start=begin))
        try:
            response = self.client.get_shard_iterator(**kwargs)
        except PARSER_ERRORS as exc:
            raise unparsable("GetShardIterator", exc) from exc
        return shard_iterator(response)

    def _read(self, shard: _Shard, result: _Poll) -> None:
        """One GetRecords on one shard, then sink and checkpoint."""
        page = self._fetch(shard, result)
        if page is None:
            return
        records = page.records
        lag = page.millis_behind
        result.lag[shard.shard_id] = lag
        events, skipped = self._convert(shard.shard_id, records)
        if events and self.sink is not None:
            accepted = self._hand_over(shard, records, events, skipped, result)
            if accepted is None:
                return
            events = accepted
        shard.undelivered = 0
        result.records += len(records)
        result.events.extend(events)
        result.skipped.extend(skipped)
        for skip in skipped:
            self._notify_skip(skip)
        if records:
            sequence = records[-1]["SequenceNumber"]
            self._save(shard, attrs.evolve(shard.checkpoint, sequence_number=sequence))
        shard.failures = 0
        shard.iterator = page.next_iterator
        if shard.iterator is None:
            self._finish(shard, result)
            return
        # At the tip: nothing came, or 0 ms behind with room to spare in the call (a full call
        # says more may be waiting, whatever MillisBehindLatest says).
        shard.at_tip = not records or (lag == 0 and len(records) < self.settings.records_per_call)
        interval = (
            self.settings.idle_poll_interval if shard.at_tip else self.settings.min_call_interval
        )
        shard.next_call = self._clock() + interval

    def _fetch(self, shard: _Shard, result: _Poll) -> RecordsPage | None:
        """One well-formed GetRecords answer, or None (the shard backs off or renews)."""
        try:
            if shard.iterator is None:
                shard.iterator = self._iterator(shard)
            result.calls += 1
            try:
                response = self.client.get_records(
                    ShardIterator=shard.iterator, Limit=self.settings.records_per_call
                )
            except PARSER_ERRORS as exc:
                raise unparsable("GetRecords", exc) from exc
            page = records_page(response)
        except ClientError as exc:
            self._read_error(shard, exc, result)
            return None
        except (BotoConnectionError, HTTPClientError) as exc:
            logger.debug("shard %s: %s; backing off", shard.shard_id, exc)
            self._back_off(shard)
            return None
        except MalformedAnswerError as exc:
            self._malformed(shard, exc, result)
            return None
        except BotoCoreError as exc:
            raise self._fatal(exc, "GetRecords") from exc
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

    def _malformed(self, shard: _Shard, exc: MalformedAnswerError, result: _Poll) -> None:
        logger.warning("shard %s: %s; asking again from the checkpoint", shard.shard_id, exc)
        result.malformed += 1
        shard.iterator = None  # the iterator's position is unknown too
        self._back_off(shard)

    def _hand_over(
        self,
        shard: _Shard,
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
            logger.warning(
                "sink did not take %d event(s) of shard %s (%r); they will be read again",
                len(events),
                shard.shard_id,
                exc,
            )
            result.sink_failures.append(SinkFailure(shard.shard_id, len(events), repr(exc)))
            shard.undelivered = len(events)
            shard.iterator = None  # re-read from the checkpoint
            self._back_off(shard)
            return None
        refusals = (
            [r for r in answer if isinstance(r, SinkRefusal)] if isinstance(answer, list) else []
        )
        if refusals:
            return self._refused(shard.shard_id, records, events, refusals, skipped)
        return events  # whatever else a sink returns (None, a list of uuids…) means "all taken"

    def _confirmed_closed(self, shard: _Shard) -> bool:
        """Whether the shard listing says the shard is closed (listing again if need be)."""
        if not shard.closed:
            self._refresh_shards()
        return shard.closed

    def _convert(
        self, shard_id: str, records: list[Any]
    ) -> tuple[list[PostHogEvent], list[SkippedRecord]]:
        events: list[PostHogEvent] = []
        skipped: list[SkippedRecord] = []
        stream = self.settings.stream_name
        mappings = self.settings.additional_property_mappings
        default_id = self.settings.default_distinct_id
        for record in records:
            data: bytes = record["Data"]
            sequence: str = record["SequenceNumber"]
            arrival: datetime = record.get("ApproximateArrivalTimestamp") or _EPOCH
            try:
                values = decode_record(data)
            except DecodeError as exc:
                skipped.append(SkippedRecord(shard_id, sequence, 0, exc.reason, data))
                continue
            except Exception as exc:  # noqa: BLE001 - the last line: one record never stops a shard
                skipped.append(SkippedRecord(shard_id, sequence, 0, _unexpected(exc), data))
                continue
            for position, value in enumerate(values):
                try:
                    events.append(
                        to_event(
                            value,
                            event_key=self._event_key,
                            mappings=mappings,
                            arrival=arrival,
                            uuid=event_uuid(stream, shard_id, sequence, position),
                            default_distinct_id=default_id,
                        )
                    )
                except UnusableRecordError as exc:  # noqa: PERF203 - rare, and per document
                    skipped.append(SkippedRecord(shard_id, sequence, position, exc.reason, data))
                except Exception as exc:  # noqa: BLE001 - the last line, as above
                    skipped.append(
                        SkippedRecord(shard_id, sequence, position, _unexpected(exc), data)
                    )
        return events, skipped

    def _refused(
        self,
        shard_id: str,
        records: list[Any],
        events: list[PostHogEvent],
        refusals: list[SinkRefusal],
        skipped: list[SkippedRecord],
    ) -> list[PostHogEvent]:
        """Turn the sink's refusals into skipped records; return the events it accepted."""
        reasons = {r.event.uuid: r.reason for r in refusals}
        stream = self.settings.stream_name
        for record in records:  # rare: find each refused event's record again
            sequence = record["SequenceNumber"]
            try:
                count = len(decode_record(record["Data"]))
            except Exception:  # noqa: BLE001, S112 - it became no event, so none was refused
                continue
            for position in range(count):
                reason = reasons.get(event_uuid(stream, shard_id, sequence, position))
                if reason is not None:
                    skipped.append(
                        SkippedRecord(
                            shard_id,
                            sequence,
                            position,
                            f"refused by the sink: {reason}",
                            record["Data"],
                        )
                    )
        return [event for event in events if event.uuid not in reasons]

    def _read_error(self, shard: _Shard, exc: ClientError, result: _Poll) -> None:
        code, _, status = error_details(exc)
        if code == "ExpiredIteratorException":
            logger.info(
                "shard %s: iterator expired; renewing it from the checkpoint", shard.shard_id
            )
            result.expired += 1
            shard.iterator = None
            return
        if code == "ResourceNotFoundException" and self._stream_still_there(shard):
            raise self._fatal(exc, "GetRecords") from exc
        if code == "ResourceNotFoundException":
            logger.warning("shard %s is gone (trimmed past retention); moving on", shard.shard_id)
            self._finish(shard, result)
            return
        if is_retryable(code, status):
            if code in ("ProvisionedThroughputExceededException", "KMSThrottlingException"):
                result.throttled += 1
            self._back_off(shard)
            return
        raise self._fatal(exc, "GetRecords") from exc

    def _stream_still_there(self, shard: _Shard) -> bool:
        """After a ResourceNotFound: is the shard still listed (so the error is real)?"""
        self._refresh_shards()  # raises StreamNotFoundError when the stream itself is gone
        return shard.shard_id in self._listed

    def _back_off(self, shard: _Shard) -> None:
        shard.failures += 1
        shard.at_tip = False
        wait = max(
            self.settings.min_call_interval, self.backoff.delay(shard.failures, self._random)
        )
        shard.next_call = self._clock() + wait

    def _finish(self, shard: _Shard, result: _Poll) -> None:
        self._save(shard, attrs.evolve(shard.checkpoint, finished=True))
        shard.iterator = None
        result.finished.append(shard.shard_id)
        logger.info("shard %s read to its end", shard.shard_id)

    def _save(self, shard: _Shard, checkpoint: ShardCheckpoint) -> None:
        self.checkpoints.save(self.settings.stream_name, shard.shard_id, checkpoint)
        shard.checkpoint = checkpoint

    def _notify_skip(self, skip: SkippedRecord) -> None:
        if self.on_skip is None:
            return
        try:
            self.on_skip(skip)
        except Exception:
            logger.exception("on_skip raised; the record stays in the result's skipped")

    def _log_skips(self, skipped: list[SkippedRecord]) -> None:
        kinds = Counter(s.kind for s in skipped)
        for kind, count in kinds.items():
            first = next(s for s in skipped if s.kind == kind)
            logger.warning(
                "skipped %d record(s): %s (first: shard %s, sequence %s: %s)",
                count,
                kind,
                first.shard_id,
                first.sequence_number,
                first.reason,
            )

    def _fatal(self, exc: Exception, operation: str) -> DeliveryError:
        """Turn a non-retryable error into a DeliveryError that says what to do."""
        return fatal_error(
            exc,
            operation=operation,
            resource=f"Kinesis stream {self.settings.stream_name!r}",
            region=self.client.meta.region_name,
            not_found_hint="fix stream_name / region (or the shard was trimmed)",
            permission=f"kinesis:{operation}",
            permission_hint=(
                " (the importer needs kinesis:ListShards, kinesis:GetShardIterator and "
                "kinesis:GetRecords)"
            ),
        )
