"""FirehoseForwarder: mParticle batches to a Kinesis Data Firehose delivery stream.

The shell around the pure modules of this package: each step reads build -> call -> interpret
-> decide. It filters (:mod:`~streambridge.forwarder.filtering`), frames
(:mod:`~streambridge.forwarder.framing`), encodes and packs
(:mod:`~streambridge.forwarder.encoding`), calls the injected boto3 client
(:func:`streambridge._aws.attempt`), reads the answer (:mod:`~streambridge.forwarder.answers`)
and settles each record in the ledger (:mod:`~streambridge.forwarder.delivery`) — delivered,
sent again under the :class:`~streambridge.RetryPolicy`, or returned as a
:class:`~streambridge.FailedRecord`. A call-level error that retrying cannot fix raises a
:class:`~streambridge.errors.DeliveryError` carrying every record not yet delivered.

Not thread-safe: use one forwarder per thread (they can share a boto3 client).
"""

from __future__ import annotations

import logging
import random as _random
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from streambridge._aws import MAX_IN_FLIGHT, CallError, ClientShell, client_error
from streambridge._tally import Tally
from streambridge.errors import DeliveryError
from streambridge.forwarder.answers import delivery_stream
from streambridge.forwarder.building import batch_records
from streambridge.forwarder.delivery import doubled_delimiter, not_ready
from streambridge.forwarder.encoding import (
    MAX_BATCH_BYTES,
    MAX_BATCH_RECORDS,
    MAX_RECORD_BYTES,
    RECORD_TOO_LARGE,
    BatchPacker,
    Encoder,
    Oversize,
    encode_payloads,
    encode_record,
)
from streambridge.forwarder.exclusion import parse_selectors
from streambridge.forwarder.framing import SessionBuffer
from streambridge.forwarder.pipeline import Pipeline, record_failures
from streambridge.forwarder.results import (
    FLUSH,
    DeliveryStreamInfo,
    DroppedEvent,
    FailedRecord,
    ForwardResult,
    Settled,
)
from streambridge.forwarder.sending import Sender, fatal_delivery_error
from streambridge.forwarder.settings import ForwarderSettings, PutMode
from streambridge.metrics import FORWARDER_FIELDS, Metrics
from streambridge.retry import RetryPolicy

if TYPE_CHECKING:
    from mypy_boto3_firehose import FirehoseClient

__all__ = ["FirehoseForwarder"]

logger = logging.getLogger("streambridge.forwarder")

_Tally = Tally[ForwardResult]


class FirehoseForwarder(ClientShell[ForwarderSettings]):
    """Forward mParticle batches to a Firehose delivery stream, as mParticle's integration does.

    Example::

        forwarder = FirehoseForwarder(boto3.client("firehose"), ForwarderSettings(
            delivery_stream_name="events"))
        result = forwarder.forward_many(batches)
        assert result.ok, result.failed

    Create the client with botocore's own retries off
    (``Config(retries={"total_max_attempts": 1})``), or use :meth:`from_settings`:
    streambridge retries throttling itself, per record, and two retry layers multiply.
    """

    service = "firehose"
    client: FirehoseClient

    def __init__(
        self,
        client: FirehoseClient,
        settings: ForwarderSettings,
        *,
        retry: RetryPolicy = RetryPolicy(),  # noqa: B008 - frozen, so one shared default is safe
        on_failure: Callable[[FailedRecord], object] | None = None,
        on_drop: Callable[[DroppedEvent], object] | None = None,
        put_mode: PutMode = "auto",
        record_delimiter: bytes = b"\n",
        max_batch_records: int = MAX_BATCH_RECORDS,
        max_batch_bytes: int = MAX_BATCH_BYTES,
        max_record_bytes: int = MAX_RECORD_BYTES,
        max_pending_sessions: int = 10_000,
        max_session_age: float = 3600.0,
        encoder: Encoder = encode_record,
        max_in_flight: int = MAX_IN_FLIGHT,
        metrics: Metrics | None = None,
        sleep: Callable[[float], object] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        random: Callable[[], float] = _random.random,
    ) -> None:
        r"""Create a forwarder.

        Args:
            client: A boto3 Firehose client (``boto3.client("firehose")``).
            settings: The connection settings.
            retry: Backoff and budgets for throttling and transient errors.
            on_failure: Called with each record that finally fails (also in the result).
            on_drop: Called with each malformed event removed from a batch (counted in the
                result's ``dropped_events``), to keep it.
            put_mode: ``"auto"`` (the default) uses ``PutRecordBatch`` until it is denied,
                then ``PutRecord`` for the rest of the forwarder's life, re-sending the denied
                call's records (mParticle's template policy grants only
                ``firehose:PutRecord``); ``"batch"`` uses only ``PutRecordBatch`` (a denial is
                an :class:`~streambridge.AccessDeniedError`); ``"single"`` only ``PutRecord``.
            record_delimiter: Bytes appended to each record: by default ``b"\\n"``, so that
                S3 objects hold one JSON document per line (Athena, Glue, PostHog's S3 import
                read them); ``b""`` keeps mParticle's framing byte for byte (Firehose
                concatenates records with nothing between them).
            max_batch_records: Records per ``PutRecordBatch`` call (at most 500).
            max_batch_bytes: Record bytes per ``PutRecordBatch`` call.
            max_record_bytes: Bytes per record; larger batches are split by events.
            max_pending_sessions: Wait for Complete Batch: sessions held at most.
            max_session_age: Wait for Complete Batch: seconds a session is held at most.
            encoder: Turns a payload into bytes (default: orjson when installed, else stdlib).
            max_in_flight: The most calls in flight at once. The forwarder starts with four,
                adds one after each call that waited on the network (10 ms or more), and
                halves on throttling; 1 sends one call at a time, in the calling thread. At
                most the client's ``max_pool_connections`` (botocore's default: 10).
            metrics: Where the forwarder's measurements go (default: a
                :class:`~streambridge.metrics.Metrics` of its own, :attr:`metrics`); several
                forwarders may share one. ``Metrics(enabled=False)`` turns them off.
            sleep: Waits between retries (inject a fake in tests; called from the threads
                that send, with calls in flight).
            clock: Monotonic seconds, for the retry time budget and session ages.
            random: Floats in [0, 1) for jitter.
        """
        if put_mode not in ("auto", "batch", "single"):
            msg = f"put_mode must be 'auto', 'batch' or 'single', got {put_mode!r}"
            raise ValueError(msg)
        if not 1 <= max_batch_records <= MAX_BATCH_RECORDS:
            msg = f"max_batch_records must be 1..{MAX_BATCH_RECORDS}, got {max_batch_records}"
            raise ValueError(msg)
        super().__init__(client, settings, sleep=sleep, clock=clock, random=random)
        self.retry = retry
        self.on_failure = on_failure
        self.on_drop = on_drop
        self.put_mode: PutMode = put_mode
        self.record_delimiter = record_delimiter
        self.max_batch_records = max_batch_records
        self.max_batch_bytes = max_batch_bytes
        self.max_record_bytes = max_record_bytes
        self._encode = encoder
        self._sessions = (
            SessionBuffer(max_sessions=max_pending_sessions, max_age=max_session_age)
            if settings.wait_for_complete_batch
            else None
        )
        self._sender = Sender(
            client,
            settings.delivery_stream_name,
            put_mode=put_mode,
            retry=retry,
            max_in_flight=max_in_flight,
            sleep=sleep,
            clock=clock,
            random=random,
        )
        self._excluded: set[tuple[str, ...]] = set()  # exclusion paths that removed a field
        self.metrics = Metrics() if metrics is None else metrics

    @property
    def metrics(self) -> Metrics:
        """The forwarder's measurements (docs/operations.md); assign one to share it."""
        return self._metrics

    @metrics.setter
    def metrics(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self._tap = metrics.tap(FORWARDER_FIELDS, self.settings.delivery_stream_name)

    @property
    def mode(self) -> PutMode:
        """The operation in use now: ``"batch"`` or ``"single"`` (``"auto"`` starts batching)."""
        return self._sender.mode

    # ------------------------------------------------------------------ public calls

    def check(self) -> DeliveryStreamInfo:
        """Check that the delivery stream exists, is ACTIVE and takes Direct PUT records.

        Raises:
            StreamNotFoundError: No such stream in this account and region.
            StreamNotReadyError: The stream is not ACTIVE, or its source is not Direct PUT.
            AccessDeniedError: ``firehose:DescribeDeliveryStream`` is not allowed.
            MalformedAnswerError: The answer was not well formed (try again).
            DeliveryError: Any other error from AWS.
        """
        name = self.settings.delivery_stream_name
        try:
            response: Any = self.client.describe_delivery_stream(DeliveryStreamName=name)
        except ClientError as exc:
            raise self._fatal(client_error(exc, "DescribeDeliveryStream")) from exc
        info = delivery_stream(response)
        problem = not_ready(info)
        if problem is not None:
            raise problem
        doubled = doubled_delimiter(info, self.record_delimiter)
        if doubled is not None:
            logger.warning("%s", doubled, extra={"delivery_stream": name})
        return info

    def forward(self, batch: object) -> ForwardResult:
        """Forward one batch; see :meth:`forward_many`."""
        return self.forward_many((batch,))

    def forward_many(self, batches: Iterable[object]) -> ForwardResult:
        """Filter, encode and deliver batches, streaming.

        ``batches`` may be any iterable, a generator included; it is read once, and memory
        holds at most one ``PutRecordBatch`` worth of records plus the current batch (and, with
        Wait for Complete Batch, the sessions held). Everything built is delivered before the
        call returns. A :data:`~streambridge.forwarder.FLUSH` among the batches sends what is
        held at once and waits for the calls in flight (for a live input that went quiet: its
        results are counted and its ``Settled`` markers told without waiting for more input).

        Returns:
            What was sent, failed, skipped, rejected and dropped.

        Raises:
            DeliveryError: A call failed in a way retrying cannot fix (missing stream, access
                denied, invalid request…). Its ``undelivered`` holds every record built and not
                delivered, and ``result`` what happened before. Batches not yet read from
                ``batches`` stay in the iterable.
        """
        run = self._pipeline()
        with run.carrying(lambda: self.pending_sessions):
            for batch in batches:
                if batch is FLUSH:  # the input went quiet: what is held goes now, and
                    run.finish()  # what is in flight is waited for (counted, settled)
                    continue
                if isinstance(batch, Settled):  # everything before it settled, then told
                    if self._sessions is not None:
                        msg = "Settled cannot be used with Wait for Complete Batch: it holds "
                        raise ValueError(msg + "sessions back")
                    run.settle(batch)
                    continue
                index = run.tally.counts["batches"]
                run.tally.add("batches")
                run.queue.extend(self._records_for(index, batch, run.tally))
                run.pack()
            if self._sessions is not None:
                expired = self._sessions.expire(self._clock())
                run.queue.extend(self._encode_payloads(expired, run.tally))
            run.finish()
        return run.result(self.pending_sessions)

    def prepare(self, batch: object) -> tuple[list[bytes], ForwardResult]:
        """Filter and encode one batch without sending it: its records, and what else it gave.

        :meth:`send` then delivers the records (with other batches' in the same calls, as
        ``streambridge serve`` does for requests that arrive together). The result counts
        the batch as :meth:`forward` would, but for ``sent``: skipped, rejected, dropped and
        filtered events, and records that cannot be sent (``failed``, too large). Safe from
        several threads when Wait for Complete Batch is off (it raises ``ValueError`` then:
        held sessions have no records yet).
        """
        if self._sessions is not None:
            msg = "prepare() cannot hold sessions back: Wait for Complete Batch is on"
            raise ValueError(msg)
        tally = _Tally(ForwardResult, self._tap)
        tally.add("batches")
        records = self._records_for(0, batch, tally)
        dropped = sum(tally.maps["dropped_reasons"].values())
        return records, tally.freeze(dropped_events=dropped, pending_sessions=0)

    def send(self, records: Iterable[bytes]) -> ForwardResult:
        """Deliver records that are already encoded, e.g. read back from a dead-letter file.

        No filtering or framing: each item is sent as it is, with the same packing, retries
        and guarantees as :meth:`forward_many`. A record over ``max_record_bytes`` is returned
        as failed (``RecordTooLarge``).

        Raises:
            DeliveryError: As :meth:`forward_many`; ``undelivered`` holds every record taken
                from ``records`` and not delivered — and, when ``records`` is a sequence (a
                list), the ones not yet taken as well.
        """
        run = self._pipeline()
        source = iter(records)
        unread = source if isinstance(records, Sequence) else iter(())
        with run.carrying(lambda: self.pending_sessions, unread):
            for record in source:
                if len(record) > self.max_record_bytes:
                    big = Oversize(record, len(record), self.max_record_bytes)
                    run.failed([FailedRecord(record, RECORD_TOO_LARGE, big.message, 0)])
                    continue
                run.queue.append(record)
                run.pack()
            run.finish()
        return run.result(self.pending_sessions)

    def flush(self) -> ForwardResult:
        """Send every session held by Wait for Complete Batch now (no-op otherwise)."""
        if self._sessions is None:
            return ForwardResult()
        run = self._pipeline()
        run.queue.extend(self._encode_payloads(self._sessions.flush(), run.tally))
        with run.carrying(lambda: 0):
            run.finish()
        return run.result(0)

    @property
    def unmatched_exclusions(self) -> list[str]:
        """Exclusion paths that removed nothing from any batch yet (a misspelt segment?)."""
        paths = parse_selectors(self.settings.metadata_field_exclusion)
        return [".".join(p) for p in paths if p not in self._excluded]

    @property
    def pending_sessions(self) -> int:
        """Sessions held by Wait for Complete Batch, waiting for their ``session_end``."""
        return len(self._sessions) if self._sessions is not None else 0

    def _pipeline(self) -> Pipeline:
        packer = BatchPacker(max_records=self.max_batch_records, max_bytes=self.max_batch_bytes)
        return Pipeline(self._sender, packer, self.on_failure, self._fatal, self.metrics)

    # ------------------------------------------------------------------ building records

    def _records_for(self, index: int, batch: object, tally: _Tally) -> list[bytes]:
        """The records one batch becomes (:func:`~.building.batch_records`)."""
        return batch_records(
            index,
            batch,
            self.settings,
            tally,
            encode=lambda payloads: self._encode_payloads(payloads, tally),
            sessions=self._sessions,
            now=self._clock,
            excluded=self._excluded,
            on_drop=self.on_drop,
        )

    def _encode_payloads(self, payloads: Iterable[dict[str, Any]], tally: _Tally) -> list[bytes]:
        records, failures = encode_payloads(
            payloads,
            encode=self._encode,
            limit=self.max_record_bytes,
            delimiter=self.record_delimiter,
        )
        if failures:
            codes = ", ".join(sorted({f.error_code for f in failures}))
            logger.warning(
                "%d record(s) cannot be sent (%s); they are returned as failed",
                len(failures),
                codes,
                extra={
                    "delivery_stream": self.settings.delivery_stream_name,
                    "records": len(failures),
                    "error_code": codes.replace(" ", ""),
                },
            )
            record_failures(failures, tally, self.on_failure)
        return records

    def _fatal(self, failure: CallError) -> DeliveryError[ForwardResult]:
        """Turn a non-retryable error into a DeliveryError that says what to do."""
        stream, region = self.settings.delivery_stream_name, self.client.meta.region_name
        return fatal_delivery_error(failure, stream, region)
