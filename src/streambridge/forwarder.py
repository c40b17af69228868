"""FirehoseForwarder: mParticle batches to a Kinesis Data Firehose delivery stream.

The shell around the pure core: it filters (:mod:`streambridge.filtering`), frames
(:mod:`streambridge.batching`), encodes and packs (:mod:`streambridge.encoding`), calls the
injected boto3 client, reads the response and decides — retry (:mod:`streambridge.retry`),
return as failed, or raise. Every record built is either delivered or returned as a
:class:`~streambridge.results.FailedRecord`; a call-level error that retrying cannot fix raises
a :class:`~streambridge.errors.DeliveryError` carrying every record not yet delivered.

Not thread-safe: use one forwarder per thread (they can share a boto3 client).
"""

from __future__ import annotations

import logging
import random as _random
import reprlib
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Literal

import attrs
from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from streambridge._aws import PARSER_ERRORS, client_for, error_details, fatal_error, unparsable
from streambridge.answers import batch_failures, record_id
from streambridge.batching import SessionBuffer, record_payloads
from streambridge.encoding import (
    MAX_BATCH_BYTES,
    MAX_BATCH_RECORDS,
    MAX_RECORD_BYTES,
    BatchPacker,
    Encoder,
    Oversize,
    encode_record,
    fit_record,
)
from streambridge.errors import (
    DeliveryError,
    EncodingError,
    ForwardAbortedError,
    InvalidBatchError,
    MalformedAnswerError,
    StreamNotReadyError,
)
from streambridge.filtering import evaluate
from streambridge.results import FailedRecord, ForwardResult, RejectedBatch, SkippedBatch
from streambridge.retry import RetryPolicy, is_retryable
from streambridge.settings import ForwarderSettings

if TYPE_CHECKING:
    from mypy_boto3_firehose import FirehoseClient

__all__ = ["DeliveryStreamInfo", "FirehoseForwarder", "PutMode"]

logger = logging.getLogger("streambridge.forwarder")

PutMode = Literal["batch", "single"]
RECORD_TOO_LARGE = "RecordTooLarge"
_PERMISSION = {"PutRecordBatch": "firehose:PutRecordBatch", "PutRecord": "firehose:PutRecord"}


@attrs.frozen
class DeliveryStreamInfo:
    """What :meth:`FirehoseForwarder.check` found.

    Attributes:
        name: The delivery stream's name.
        arn: Its ARN.
        status: ``"ACTIVE"`` (check raises otherwise).
        stream_type: ``"DirectPut"`` (check raises otherwise).
    """

    name: str
    arn: str
    status: str
    stream_type: str


@attrs.define
class _Tally:
    """The mutable accumulator behind one ForwardResult."""

    sent: int = 0
    failed: list[FailedRecord] = attrs.Factory(list)
    skipped: list[SkippedBatch] = attrs.Factory(list)
    rejected: list[RejectedBatch] = attrs.Factory(list)
    dropped: dict[str, int] = attrs.Factory(dict)
    filtered: int = 0
    batches: int = 0
    api_calls: int = 0
    retries: int = 0

    def freeze(self, pending_sessions: int) -> ForwardResult:
        return ForwardResult(
            sent=self.sent,
            failed=tuple(self.failed),
            skipped=tuple(self.skipped),
            rejected=tuple(self.rejected),
            dropped_events=sum(self.dropped.values()),
            dropped_reasons=dict(self.dropped),
            filtered_events=self.filtered,
            batches=self.batches,
            api_calls=self.api_calls,
            retries=self.retries,
            pending_sessions=pending_sessions,
        )


_Outcome = tuple[str, str, bool] | None  # None: delivered; else (code, message, retryable)


class _Fatal(Exception):  # noqa: N818 - internal signal, never escapes
    """A non-retryable error; ``done`` holds the outcomes of the records sent before it."""

    def __init__(self, error: Exception, done: list[_Outcome]) -> None:
        super().__init__(str(error))
        self.error = error
        self.done = done


class _Undelivered(Exception):  # noqa: N818 - internal signal, never escapes
    def __init__(self, error: DeliveryError, cause: Exception, records: tuple[bytes, ...]) -> None:
        super().__init__(str(error))
        self.error = error
        self.cause = cause
        self.records = records


def _unknown_outcome(error: MalformedAnswerError, records: int) -> list[_Outcome]:
    """A call whose answer cannot be believed: each of its records is to be sent again."""
    logger.warning("%s; re-sending the call's %d record(s)", error, records)
    return [(error.code, str(error), True)] * records


def _aborted(exc: Exception) -> _Undelivered:
    """An unexpected error, as a ForwardAbortedError carrying nothing yet."""
    error = ForwardAbortedError(
        f"forwarding stopped on an unexpected {type(exc).__name__}: {exc}; the records built "
        f"and not delivered are in .undelivered, what happened before in .result"
    )
    return _Undelivered(error, exc, ())


class _Readable(reprlib.Repr):
    """``repr`` to a depth of 100, whole otherwise; integers past ``str()``'s limit summarised."""

    def __init__(self) -> None:
        super().__init__()
        self.maxlevel = 100
        self.maxstring = self.maxother = self.maxlong = 1_000_000
        self.maxdict = self.maxlist = self.maxtuple = self.maxset = 1_000_000
        self.maxfrozenset = self.maxdeque = self.maxarray = 1_000_000

    def repr_int(self, x: int, level: int) -> str:
        try:
            return super().repr_int(x, level)
        except ValueError:
            return f"<an integer of about {x.bit_length() * 0.30103:.0f} digits>"


_READABLE = _Readable()


def _readable(payload: object) -> bytes:
    """A payload JSON cannot hold, as text a person can read (deeper than 100 levels: ``...``).

    Never raises: no recursion error, and lone surrogates are written as escapes.
    """
    try:
        text = _READABLE.repr(payload)
    except Exception:  # noqa: BLE001 - an object whose own __repr__ raises
        text = f"<a {type(payload).__name__} that cannot be shown>"
    return text.encode("utf-8", "backslashreplace")


class FirehoseForwarder:
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

    def __init__(
        self,
        client: FirehoseClient,
        settings: ForwarderSettings,
        *,
        retry: RetryPolicy = RetryPolicy(),  # noqa: B008 - frozen, so one shared default is safe
        on_failure: Callable[[FailedRecord], object] | None = None,
        put_mode: PutMode = "batch",
        record_delimiter: bytes = b"",
        max_batch_records: int = MAX_BATCH_RECORDS,
        max_batch_bytes: int = MAX_BATCH_BYTES,
        max_record_bytes: int = MAX_RECORD_BYTES,
        max_pending_sessions: int = 10_000,
        max_session_age: float = 3600.0,
        encoder: Encoder = encode_record,
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
            put_mode: ``"batch"`` uses ``PutRecordBatch`` (needs ``firehose:PutRecordBatch``);
                ``"single"`` uses one ``PutRecord`` per record (the only write permission in
                mParticle's template policy).
            record_delimiter: Bytes appended to each record, e.g. ``b"\\n"`` so that S3
                objects hold one JSON document per line. Default none, like mParticle.
            max_batch_records: Records per ``PutRecordBatch`` call (at most 500).
            max_batch_bytes: Record bytes per ``PutRecordBatch`` call.
            max_record_bytes: Bytes per record; larger batches are split by events.
            max_pending_sessions: Wait for Complete Batch: sessions held at most.
            max_session_age: Wait for Complete Batch: seconds a session is held at most.
            encoder: Turns a payload into bytes (default: orjson when installed, else stdlib).
            sleep: Waits between retries (inject a fake in tests).
            clock: Monotonic seconds, for the retry time budget and session ages.
            random: Floats in [0, 1) for jitter.
        """
        if put_mode not in ("batch", "single"):
            msg = f"put_mode must be 'batch' or 'single', got {put_mode!r}"
            raise ValueError(msg)
        if not 1 <= max_batch_records <= MAX_BATCH_RECORDS:
            msg = f"max_batch_records must be 1..{MAX_BATCH_RECORDS}, got {max_batch_records}"
            raise ValueError(msg)
        self.client = client
        self.settings = settings
        self.retry = retry
        self.on_failure = on_failure
        self.put_mode: PutMode = put_mode
        self.record_delimiter = record_delimiter
        self.max_batch_records = max_batch_records
        self.max_batch_bytes = max_batch_bytes
        self.max_record_bytes = max_record_bytes
        self._encode = encoder
        self._sleep = sleep
        self._clock = clock
        self._random = random
        self._sessions = (
            SessionBuffer(max_sessions=max_pending_sessions, max_age=max_session_age)
            if settings.wait_for_complete_batch
            else None
        )

    @classmethod
    def from_settings(
        cls,
        settings: ForwarderSettings,
        *,
        session: Any = None,
        endpoint_url: str | None = None,
        **options: Any,
    ) -> FirehoseForwarder:
        """Build the boto3 client from the settings (region, optional keys), then the forwarder.

        The client has botocore's retries off, since the forwarder retries itself.

        Args:
            settings: The connection settings; ``region`` and the optional keys are used.
            session: A ``boto3.Session`` to build the client from (default: a new one).
            endpoint_url: Another endpoint, e.g. a local AWS stand-in.
            **options: Passed on to :class:`FirehoseForwarder`.
        """
        client = client_for("firehose", settings, session=session, endpoint_url=endpoint_url)
        return cls(client, settings, **options)

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
            raise self._fatal(exc, "DescribeDeliveryStream") from exc
        try:
            description = response["DeliveryStreamDescription"]
            status = description["DeliveryStreamStatus"]
            stream_type = description["DeliveryStreamType"]
            found = (description["DeliveryStreamName"], description["DeliveryStreamARN"])
        except (KeyError, TypeError) as exc:  # the answer lacks a part: cut short, garbled…
            raise unparsable("DescribeDeliveryStream", exc) from exc
        if status != "ACTIVE":
            msg = (
                f"delivery stream {name!r} is {status}, not ACTIVE: wait until it is ACTIVE "
                f"(or fix it in the Firehose console) before forwarding"
            )
            raise StreamNotReadyError(msg, error_code=status)
        if stream_type != "DirectPut":
            msg = (
                f"delivery stream {name!r} has source {stream_type}; records can only be put on "
                f"a stream whose source is 'Direct PUT': create one with that source"
            )
            raise StreamNotReadyError(msg, error_code=stream_type)
        return DeliveryStreamInfo(
            name=found[0],
            arn=found[1],
            status=status,
            stream_type=stream_type,
        )

    def forward(self, batch: object) -> ForwardResult:
        """Forward one batch; see :meth:`forward_many`."""
        return self.forward_many((batch,))

    def forward_many(self, batches: Iterable[object]) -> ForwardResult:
        """Filter, encode and deliver batches, streaming.

        ``batches`` may be any iterable, a generator included; it is read once, and memory
        holds at most one ``PutRecordBatch`` worth of records plus the current batch (and, with
        Wait for Complete Batch, the sessions held). Everything built is delivered before the
        call returns.

        Returns:
            What was sent, failed, skipped, rejected and dropped.

        Raises:
            DeliveryError: A call failed in a way retrying cannot fix (missing stream, access
                denied, invalid request…). Its ``undelivered`` holds every record built and not
                delivered, and ``result`` what happened before. Batches not yet read from
                ``batches`` stay in the iterable.
        """
        tally = _Tally()
        packer = BatchPacker(max_records=self.max_batch_records, max_bytes=self.max_batch_bytes)
        queue: deque[bytes] = deque()
        with self._carrying(packer, queue, tally):
            for index, batch in enumerate(batches):
                tally.batches += 1
                queue.extend(self._records_for(index, batch, tally))
                self._pack(queue, packer, tally)
            if self._sessions is not None:
                queue.extend(self._encode_payloads(self._sessions.expire(self._clock()), tally))
                self._pack(queue, packer, tally)
            self._deliver(packer.drain(), tally)
        return tally.freeze(self.pending_sessions)

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
        tally = _Tally()
        packer = BatchPacker(max_records=self.max_batch_records, max_bytes=self.max_batch_bytes)
        queue: deque[bytes] = deque()
        source = iter(records)
        unread = source if isinstance(records, Sequence) else iter(())
        with self._carrying(packer, queue, tally, unread):
            for record in source:
                if len(record) > self.max_record_bytes:
                    big = Oversize(record, len(record), self.max_record_bytes)
                    self._record_failures(
                        [FailedRecord(record, RECORD_TOO_LARGE, big.message, 0)], tally
                    )
                    continue
                queue.append(record)
                self._pack(queue, packer, tally)
            self._deliver(packer.drain(), tally)
        return tally.freeze(self.pending_sessions)

    def flush(self) -> ForwardResult:
        """Send every session held by Wait for Complete Batch now (no-op otherwise)."""
        if self._sessions is None:
            return ForwardResult()
        tally = _Tally()
        records = deque(self._encode_payloads(self._sessions.flush(), tally))
        packer = BatchPacker(max_records=self.max_batch_records, max_bytes=self.max_batch_bytes)
        with self._carrying(packer, records, tally):
            self._pack(records, packer, tally)
            self._deliver(packer.drain(), tally)
        return tally.freeze(0)

    @contextmanager
    def _carrying(
        self,
        packer: BatchPacker,
        queue: deque[bytes],
        tally: _Tally,
        unread: Iterator[bytes] = iter(()),  # noqa: B008 - an empty iterator is never shared state
    ) -> Iterator[None]:
        """Whatever stops the block raises a DeliveryError carrying every record not delivered.

        A fatal AWS error keeps its own type; anything else (the input iterable raising, a
        signal handler's exception, a bug) becomes a ForwardAbortedError. Records are carried
        in order: those of the call that failed, the packer's, the queue's, then ``unread``.
        """
        try:
            yield
        except _Undelivered as stop:
            raise self._carry(stop, packer, queue, tally, unread) from stop.cause
        except Exception as exc:
            raise self._carry(_aborted(exc), packer, queue, tally, unread) from exc

    def _carry(
        self,
        stop: _Undelivered,
        packer: BatchPacker,
        queue: deque[bytes],
        tally: _Tally,
        unread: Iterator[bytes],
    ) -> DeliveryError:
        """Attach every record not delivered, in order, and the result so far, to the error."""
        error = stop.error
        error.undelivered = stop.records + tuple(packer.drain()) + tuple(queue) + tuple(unread)
        error.result = tally.freeze(self.pending_sessions)
        return error

    @property
    def pending_sessions(self) -> int:
        """Sessions held by Wait for Complete Batch, waiting for their ``session_end``."""
        return len(self._sessions) if self._sessions is not None else 0

    # ------------------------------------------------------------------ building records

    def _records_for(self, index: int, batch: object, tally: _Tally) -> list[bytes]:
        """The records one batch becomes; a batch that cannot be read is rejected."""
        try:
            return self._build(index, batch, tally)
        except InvalidBatchError as exc:
            tally.rejected.append(RejectedBatch(index, exc.reason))
        except Exception as exc:  # noqa: BLE001 - the last line: one batch never stops the rest
            logger.warning("batch %d rejected: %s: %s", index, type(exc).__name__, exc)
            tally.rejected.append(
                RejectedBatch(index, f"cannot be processed ({type(exc).__name__}: {exc})"[:300])
            )
        return []

    def _build(self, index: int, batch: object, tally: _Tally) -> list[bytes]:
        outcome = evaluate(batch, self.settings)
        tally.filtered += outcome.filtered_events
        for reason, count in outcome.dropped.items():
            tally.dropped[reason] = tally.dropped.get(reason, 0) + count
        if outcome.batch is None:
            assert isinstance(batch, Mapping)  # noqa: S101 - evaluate() checked it
            message_id = batch.get("message_id")
            tally.skipped.append(
                SkippedBatch(
                    index,
                    message_id if isinstance(message_id, str) else None,
                    outcome.skip_reason or "",
                )
            )
            return []
        if self._sessions is not None:
            assert isinstance(batch, Mapping)  # noqa: S101 - evaluate() checked it
            payloads = self._sessions.add(batch, outcome.batch, self._clock())
        else:
            payloads = record_payloads(outcome.batch, send_as_batch=self.settings.send_as_batch)
        return self._encode_payloads(payloads, tally)

    def _encode_payloads(self, payloads: Iterable[dict[str, Any]], tally: _Tally) -> list[bytes]:
        records: list[bytes] = []
        failures: list[FailedRecord] = []
        for payload in payloads:
            try:
                fitted, oversize = fit_record(
                    payload,
                    encode=self._encode,
                    limit=self.max_record_bytes,
                    delimiter=self.record_delimiter,
                )
            except EncodingError as exc:  # not representable as JSON: return it, readable
                failures.append(FailedRecord(_readable(payload), "EncodingError", str(exc), 0))
                continue
            records.extend(fitted)
            failures.extend(
                FailedRecord(big.data, RECORD_TOO_LARGE, big.message, 0) for big in oversize
            )
        if failures:
            logger.warning(
                "%d record(s) cannot be sent (%s); they are returned as failed",
                len(failures),
                ", ".join(sorted({f.error_code for f in failures})),
            )
            self._record_failures(failures, tally)
        return records

    def _pack(self, queue: deque[bytes], packer: BatchPacker, tally: _Tally) -> None:
        while queue:
            group = packer.add(queue[0])
            queue.popleft()
            if group:
                self._deliver(group, tally)

    # ------------------------------------------------------------------ delivery

    def _deliver(self, records: list[bytes], tally: _Tally) -> None:
        """Deliver records with retries; failures go to the tally, fatal errors raise."""
        if not records:
            return
        pending = list(range(len(records)))
        try:
            self._deliver_pending(records, pending, tally)
        except _Undelivered:
            raise
        except Exception as exc:  # a signal, a bug: the records in flight are carried too
            raise _Undelivered(
                _aborted(exc).error, exc, tuple(records[i] for i in pending)
            ) from exc

    def _deliver_pending(self, records: list[bytes], pending: list[int], tally: _Tally) -> None:
        """The retry loop of :meth:`_deliver`; ``pending`` always holds what is not settled."""
        attempts = [0] * len(records)
        last: dict[int, tuple[str, str]] = {}
        start = self._clock()
        retry = 0
        while True:
            try:
                errors = self._attempt([records[i] for i in pending], tally)
            except _Fatal as fatal:
                sent_before = pending[: len(fatal.done)]
                still = self._settle(records, sent_before, fatal.done, attempts, last, tally)
                unsent = still + pending[len(fatal.done) :]
                operation = "PutRecordBatch" if self.put_mode == "batch" else "PutRecord"
                raise _Undelivered(
                    self._fatal(fatal.error, operation),
                    fatal.error,
                    tuple(records[i] for i in sorted(unsent)),
                ) from None
            pending[:] = self._settle(records, pending, errors, attempts, last, tally)
            if not pending:
                return
            retry += 1
            wait = self.retry.next_delay(retry, self._clock() - start, self._random)
            if wait is None:
                break
            logger.debug("retrying %d record(s) in %.3fs (retry %d)", len(pending), wait, retry)
            self._sleep(wait)
            tally.retries += 1
        codes = sorted({last[i][0] for i in pending})
        logger.warning(
            "Retry Limit Exceeded: %d of %d record(s) failed after %d attempt(s) in %.1fs (%s)",
            len(pending),
            len(records),
            retry,
            self._clock() - start,
            ", ".join(codes),
        )
        self._record_failures(
            [FailedRecord(records[i], last[i][0], last[i][1], attempts[i]) for i in pending], tally
        )

    def _settle(
        self,
        records: list[bytes],
        pending: list[int],
        outcomes: list[_Outcome],
        attempts: list[int],
        last: dict[int, tuple[str, str]],
        tally: _Tally,
    ) -> list[int]:
        """Count one round's outcomes; return the indexes to retry."""
        still: list[int] = []
        for index, outcome in zip(pending, outcomes, strict=False):
            attempts[index] += 1
            if outcome is None:
                tally.sent += 1
            elif outcome[2]:
                still.append(index)
                last[index] = (outcome[0], outcome[1])
            else:
                failure = FailedRecord(records[index], outcome[0], outcome[1], attempts[index])
                self._record_failures([failure], tally)
        return still

    def _attempt(self, records: list[bytes], tally: _Tally) -> list[_Outcome]:
        """Send once. Per record: None if delivered, else (code, message, retryable)."""
        if self.put_mode == "single":
            done: list[_Outcome] = []
            for record in records:
                try:
                    done.append(self._attempt_single(record, tally))
                except (ClientError, BotoCoreError) as exc:  # noqa: PERF203 - one call per record
                    raise _Fatal(exc, done) from exc
            return done
        tally.api_calls += 1
        try:
            response = self.client.put_record_batch(
                DeliveryStreamName=self.settings.delivery_stream_name,
                Records=[{"Data": record} for record in records],
            )
        except ClientError as exc:
            code, message, status = error_details(exc)
            if not is_retryable(code, status):
                raise _Fatal(exc, []) from exc
            return [(code, message, True)] * len(records)
        except (BotoConnectionError, HTTPClientError) as exc:
            return [("ConnectionError", str(exc), True)] * len(records)
        except BotoCoreError as exc:  # no credentials, invalid parameters…: nothing to retry
            raise _Fatal(exc, []) from exc
        except PARSER_ERRORS as exc:
            return _unknown_outcome(unparsable("PutRecordBatch", exc), len(records))
        try:
            failed = batch_failures(response, len(records))
        except MalformedAnswerError as exc:
            return _unknown_outcome(exc, len(records))
        results: list[_Outcome] = [None] * len(records)
        for index, code, message in failed:
            results[index] = (code, message, is_retryable(code))
        return results

    def _attempt_single(self, record: bytes, tally: _Tally) -> _Outcome:
        """Send one record with PutRecord; a non-retryable error propagates."""
        tally.api_calls += 1
        try:
            response = self.client.put_record(
                DeliveryStreamName=self.settings.delivery_stream_name, Record={"Data": record}
            )
            record_id(response)
        except ClientError as exc:
            code, message, status = error_details(exc)
            if not is_retryable(code, status):
                raise
            return (code, message, True)
        except (BotoConnectionError, HTTPClientError) as exc:
            return ("ConnectionError", str(exc), True)
        except MalformedAnswerError as exc:
            return _unknown_outcome(exc, 1)[0]
        except PARSER_ERRORS as exc:
            return _unknown_outcome(unparsable("PutRecord", exc), 1)[0]
        return None

    def _record_failures(self, failures: list[FailedRecord], tally: _Tally) -> None:
        tally.failed.extend(failures)
        if self.on_failure is None:
            return
        for failure in failures:
            try:
                self.on_failure(failure)
            except Exception:  # noqa: PERF203 - a user callback must not lose records
                logger.exception("on_failure raised; the record stays in the result's failed")

    def _fatal(self, exc: Exception, operation: str) -> DeliveryError:
        """Turn a non-retryable error into a DeliveryError that says what to do."""
        hint = " on the stream's ARN in the IAM policy"
        if operation == "PutRecordBatch":
            hint += (
                " — or create the forwarder with put_mode='single', which needs only "
                "firehose:PutRecord (mParticle's template policy)"
            )
        return fatal_error(
            exc,
            operation=operation,
            resource=f"delivery stream {self.settings.delivery_stream_name!r}",
            region=self.client.meta.region_name,
            not_found_hint="create it (source 'Direct PUT') or fix delivery_stream_name / region",
            permission=_PERMISSION.get(operation, f"firehose:{operation}"),
            permission_hint=hint,
        )
