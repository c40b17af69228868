"""The Kinesis Client Library: a record processor for its MultiLangDaemon (amazon-kclpy).

The KCL owns the leases (a DynamoDB table), resharding order and the checkpoints across a
fleet; its MultiLangDaemon runs one child process per shard and talks to it in JSON lines on
stdin/stdout. :class:`KclRecordProcessor` is that child's record processor (amazon-kclpy's
``amazon_kclpy.v3.processor`` interface), and ``streambridge kcl`` the command the daemon's
properties file names as its executable (docs/kcl.md). It converts with the importer's own
conversion (:class:`~streambridge.RecordConverter`): the KCL hands over KPL user records
already split, each with its sub-sequence number, and gets the same events and uuids as
:class:`~streambridge.KinesisImporter` and the Lambda handler.

The processor checkpoints only past what the sink accepted:

* ``process_records``: convert, hand the events to the sink (retrying a failing sink with
  backoff up to ``sink_patience`` seconds), then checkpoint the batch's last
  ``(sequenceNumber, subSequenceNumber)``. A sink that still fails — or cannot ever take the
  events (:class:`~streambridge.errors.FatalSinkError`) — ends the process (``SystemExit``):
  amazon-kclpy would swallow an exception and let a later checkpoint pass the records, while
  the daemon stops when its child exits, and whoever reads the shard next starts at the last
  checkpoint. Records that cannot become events are skipped with a reason (``on_skip``); a
  dead letter that cannot be written (:class:`~streambridge.errors.DeadLetterError`) ends the
  process too (exit 5), with no checkpoint past the batch.
* ``shard_ended``: checkpoint the end of the shard (the KCL then starts its children);
* ``lease_lost``: checkpoint nothing (another worker holds the shard);
* ``shutdown_requested``: checkpoint what was delivered.

A checkpoint refused with ``ThrottlingException`` (or a DynamoDB dependency error) is retried
with backoff; ``ShutdownException`` (the lease is gone) stops checkpointing quietly.

Arrival times come from the record's ``timestamp_millis`` (amazon-kclpy's
``approximate_arrival_timestamp`` is a naive datetime in the machine's local time).
"""

from __future__ import annotations

import base64
import logging
import random as _random
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any, NoReturn

from streambridge.deadletter import hand_back
from streambridge.errors import DeadLetterError, FatalSinkError
from streambridge.importer.conversion import RecordConverter
from streambridge.importer.events import PostHogEvent
from streambridge.importer.results import SkippedRecord, refusals_in, skip_summary
from streambridge.importer.settings import ImporterSettings
from streambridge.importer.sinks import Sink
from streambridge.metrics import Metrics
from streambridge.retry import RetryPolicy

__all__ = ["EXIT_DEAD_LETTER", "EXIT_SINK_FAILED", "KclRecordProcessor"]

logger = logging.getLogger("streambridge.kcl")

#: The exit status when the sink did not take a batch's events (the daemon stops too).
EXIT_SINK_FAILED = 4
#: The exit status when a skipped record's dead letter could not be written.
EXIT_DEAD_LETTER = 5

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_RETRY_CHECKPOINT = ("ThrottlingException", "KinesisClientLibDependencyException")
_LEASE_GONE = "ShutdownException"


def _field(record: Any, attribute: str, key: str) -> Any:
    """An amazon-kclpy ``Record`` attribute, or the key of a record left as a plain dict."""
    if isinstance(record, dict):
        return record.get(key)
    return getattr(record, attribute)


def kinesis_record(record: Any) -> dict[str, Any]:
    """An amazon-kclpy record as the converter reads it (what botocore's GetRecords gives)."""
    millis = _field(record, "timestamp_millis", "approximateArrivalTimestamp")
    out: dict[str, Any] = {
        "Data": base64.b64decode(_field(record, "data", "data") or ""),
        "SequenceNumber": _field(record, "sequence_number", "sequenceNumber"),
        "SubSequenceNumber": _field(record, "sub_sequence_number", "subSequenceNumber") or 0,
    }
    if millis is not None:
        out["ApproximateArrivalTimestamp"] = _EPOCH + timedelta(milliseconds=int(millis))
    return out


class KclRecordProcessor:
    """A MultiLangDaemon record processor that imports a shard's records into a sink.

    Run it with amazon-kclpy: ``amazon_kclpy.kcl.KCLProcess(processor).run()`` (what
    ``streambridge kcl`` does). One process, one shard.
    """

    #: amazon-kclpy's processor interface version (``amazon_kclpy.v3.processor``).
    version = 3

    def __init__(
        self,
        settings: ImporterSettings,
        sink: Sink,
        *,
        on_skip: Callable[[SkippedRecord], object] | None = None,
        sink_patience: float = 300.0,
        retry: RetryPolicy = RetryPolicy(base_delay=1.0, max_delay=30.0),  # noqa: B008 - frozen
        sleep: Callable[[float], object] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        random: Callable[[], float] = _random.random,
        metrics: Metrics | None = None,
    ) -> None:
        """A processor for ``settings``' stream (whose name goes into the uuids).

        Args:
            settings: Stream name (the daemon's ``streamName``), event key, mappings.
            sink: Receives each batch's events; it must return only once the destination has
                them (:class:`~streambridge.PostHogSink` does).
            on_skip: Called with each record that cannot become an event.
            sink_patience: Seconds a failing sink is retried for before the process exits.
            retry: The backoff between sink attempts and checkpoint retries.
            sleep: Waits (inject a fake in tests).
            clock: Monotonic seconds.
            random: Floats in [0, 1) for jitter.
            metrics: Where its measurements go (default: its own, :attr:`metrics`): records
                read, events delivered, records skipped, sink latency and failures.
        """
        self.settings = settings
        #: What this shard's processor did (docs/operations.md).
        self.metrics = Metrics() if metrics is None else metrics
        self.sink = sink
        self.on_skip = on_skip
        self.sink_patience = sink_patience
        self.retry = retry
        self._sleep = sleep
        self._clock = clock
        self._random = random
        self._convert = RecordConverter(settings)
        self.shard_id = "unknown"
        #: The last (sequence, sub-sequence) whose events the sink accepted, and checkpointed.
        self.delivered: tuple[str, int] | None = None
        self.checkpointed: tuple[str, int] | None = None
        self._refused = 0  # events of the batch the sink refused (skipped, not delivered)

    # ------------------------------------------------------------------ the daemon's calls

    def initialize(self, initialize_input: Any) -> None:
        """The shard this process reads."""
        self.shard_id = str(initialize_input.shard_id)
        logger.info("shard %s: starting after %s", self.shard_id, initialize_input.sequence_number)

    def process_records(self, process_records_input: Any) -> None:
        """Convert, deliver, then checkpoint the batch (or exit, checkpointing nothing)."""
        records = [kinesis_record(r) for r in process_records_input.records]
        if not records:
            return
        events, skipped = self._convert.convert(self.shard_id, records)
        self._refused = 0
        if events:
            skipped.extend(self._deliver(records, events))
        try:
            hand_back(self.on_skip, skipped, logger, "on_skip raised; going on")
        except DeadLetterError as exc:  # not written, so not handed back: no checkpoint past it
            self._exit(str(exc), EXIT_DEAD_LETTER)
        if skipped:
            logger.warning(
                "shard %s: %s",
                self.shard_id,
                "; ".join(skip_summary(skipped)),
                extra={**self._fields(), "records": len(skipped)},
            )
        last = records[-1]
        self.delivered = (last["SequenceNumber"], last["SubSequenceNumber"])
        stream = self.settings.stream_name
        self.metrics.add("records_read", stream, len(records))
        self.metrics.add("events_delivered", stream, len(events) - self._refused)
        self.metrics.add("records_skipped", stream, len(skipped))
        self._checkpoint(process_records_input.checkpointer, self.delivered)

    def lease_lost(self, lease_lost_input: Any) -> None:
        """Another worker holds the shard now: checkpoint nothing."""
        logger.info("shard %s: lease lost", self.shard_id)

    def shard_ended(self, shard_ended_input: Any) -> None:
        """The shard is read to its end (and delivered): checkpoint its end."""
        logger.info("shard %s: read to its end", self.shard_id)
        self._checkpoint(shard_ended_input.checkpointer, None)

    def shutdown_requested(self, shutdown_requested_input: Any) -> None:
        """The worker is stopping: checkpoint what was delivered, if not yet."""
        if self.delivered is not None and self.delivered != self.checkpointed:
            self._checkpoint(shutdown_requested_input.checkpointer, self.delivered)

    # ------------------------------------------------------------------ inside

    def _deliver(self, records: Sequence[Any], events: list[PostHogEvent]) -> list[SkippedRecord]:
        """Give the events to the sink until it takes them; its refusals, as skipped records."""
        start, attempt = self._clock(), 0
        while True:
            attempt += 1
            began = time.perf_counter()
            try:
                answer = self.sink(events)
            except FatalSinkError as exc:
                self.metrics.add("sink_failures", self.settings.stream_name)
                self._exit(f"the sink cannot take events: {exc}")
            except Exception as exc:  # noqa: BLE001 - any other failure: retry, then exit
                self.metrics.add("sink_failures", self.settings.stream_name)
                if self._clock() - start >= self.sink_patience:
                    self._exit(
                        f"the sink did not take {len(events)} event(s) for "
                        f"{self.sink_patience:.0f} s (last: {exc!r})"
                    )
                delay = self.retry.delay(attempt, self._random)
                logger.warning(
                    "shard %s: the sink did not take %d event(s) (%r); again in %.1f s",
                    self.shard_id,
                    len(events),
                    exc,
                    delay,
                    extra={
                        **self._fields(),
                        "events": len(events),
                        "error_code": type(exc).__name__,
                    },
                )
                self._sleep(delay)
                continue
            stream = self.settings.stream_name
            self.metrics.observe("sink_latency", stream, time.perf_counter() - began)
            refusals = refusals_in(answer)
            self._refused = len(refusals)
            return self._convert.refused(self.shard_id, records, refusals) if refusals else []

    def _checkpoint(self, checkpointer: Any, position: tuple[str, int] | None) -> None:
        """Checkpoint at ``position`` (None: the end of the shard), retrying throttling."""
        attempt = 0
        while True:
            attempt += 1
            try:
                if position is None:
                    checkpointer.checkpoint()
                else:
                    checkpointer.checkpoint(position[0], position[1])
            except Exception as exc:  # noqa: BLE001 - amazon-kclpy's CheckpointError, by name
                code = str(exc.args[0]) if exc.args else type(exc).__name__
                if code == _LEASE_GONE:
                    logger.info("shard %s: lease gone; not checkpointing", self.shard_id)
                    return
                if code in _RETRY_CHECKPOINT and attempt < self.retry.max_attempts:
                    self._sleep(self.retry.delay(attempt, self._random))
                    continue
                logger.error(  # noqa: TRY400 - the code says it; no traceback to show
                    "shard %s: checkpoint at %s refused (%s); the records will be read again",
                    self.shard_id,
                    position or "the end",
                    code,
                    extra={**self._fields(), "error_code": code},
                )
                return
            self.checkpointed = position
            return

    def _exit(self, why: str, status: int = EXIT_SINK_FAILED) -> NoReturn:
        logger.error(
            "shard %s: %s; exiting without a checkpoint past them (they will be read again)",
            self.shard_id,
            why,
            extra={**self._fields(), "exit_code": status},
        )
        raise SystemExit(status)

    def _fields(self) -> dict[str, object]:
        """The structured fields of a log line about this shard."""
        sequence = self.delivered[0] if self.delivered is not None else None
        return {
            "stream": self.settings.stream_name,
            "shard": self.shard_id,
            "sequence_number": sequence,
        }
