"""The per-entry ledger of one ``PutRecordBatch`` group: delivered, to send again, failed (pure).

A group is sent, the answer is read entry by entry, and each record is settled: delivered,
pending (a retryable error: it is sent again, alone with the other pending ones), or failed (an
error retrying cannot fix). What is still pending when the retry budget runs out fails with its
last error. What is pending when a call-level error stops delivery is *undelivered*: the
forwarder's :class:`~streambridge.errors.DeliveryError` carries it. The ledger keeps the
records' order throughout.

When delivery stops — an error retrying cannot fix (:class:`Stopped`), or anything else
(the input iterable raising, a signal handler's exception, a bug) — :func:`carrying` raises
a :class:`~streambridge.errors.DeliveryError` carrying every record not delivered: a fatal
AWS error keeps its own type, anything else becomes a
:class:`~streambridge.errors.ForwardAbortedError`. Also here: what a delivery stream must be
to take records (:func:`not_ready`), and when ``put_mode="auto"`` stops batching
(:func:`falls_back`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import attrs

from streambridge.errors import DeliveryError, ForwardAbortedError, StreamNotReadyError
from streambridge.forwarder.results import DeliveryStreamInfo, FailedRecord, ForwardResult
from streambridge.retry import PERMISSION_DENIED_CODES

__all__ = [
    "GROW_ABOVE",
    "INITIAL",
    "ConcurrencyLimit",
    "EntryError",
    "Ledger",
    "Stopped",
    "batching_statement",
    "carrying",
    "doubled_delimiter",
    "falls_back",
    "not_ready",
]


@attrs.frozen
class EntryError:
    """Why one record of a call was not delivered.

    Attributes:
        code: The AWS error code (per entry, or the call's).
        message: The error message.
        retryable: Whether sending it again may succeed.
    """

    code: str
    message: str
    retryable: bool


#: Firehose bills ingestion per record rounded up to the next 5 KB (AWS's pricing page).
BILLING_UNIT = 5 * 1024


def billed(size: int) -> int:
    """The bytes Firehose bills for one record of ``size`` bytes (rounded up to 5 KB)."""
    return -(-size // BILLING_UNIT) * BILLING_UNIT


class Ledger:
    """Where each record of one group stands.

    Attributes:
        records: The group, in order.
        pending: Indexes of the records not settled yet, in order.
        attempts: How many times each record was sent.
        delivered_bytes: The bytes of the records delivered so far.
        billed_bytes: What Firehose bills for them (each rounded up to 5 KB).
    """

    def __init__(self, records: list[bytes]) -> None:
        """A ledger for ``records``, none sent yet."""
        self.records = records
        self.pending = list(range(len(records)))
        self.attempts = [0] * len(records)
        self._last: dict[int, EntryError] = {}
        self.delivered_bytes = self.billed_bytes = 0

    @property
    def done(self) -> bool:
        """Whether every record is settled (delivered or failed)."""
        return not self.pending

    def to_send(self) -> list[bytes]:
        """The records to send now: the pending ones, in order."""
        return [self.records[i] for i in self.pending]

    def settle(self, outcomes: Sequence[EntryError | None]) -> tuple[int, list[FailedRecord]]:
        """Count the answer to the last :meth:`to_send`: None for a delivered record.

        ``outcomes`` may cover only the first records sent (a run of ``PutRecord`` calls that
        stopped part way); the others stay pending, not counted as sent.

        Returns:
            How many were delivered, and the records that failed for good.
        """
        delivered = 0
        failed: list[FailedRecord] = []
        again: list[int] = []
        for index, outcome in zip(self.pending, outcomes, strict=False):
            self.attempts[index] += 1
            if outcome is None:
                delivered += 1
                size = len(self.records[index])
                self.delivered_bytes += size
                self.billed_bytes += billed(size)
            elif outcome.retryable:
                again.append(index)
                self._last[index] = outcome
            else:
                failed.append(self._failed(index, outcome))
        self.pending = sorted(again + self.pending[len(outcomes) :])
        return delivered, failed

    def give_up(self) -> list[FailedRecord]:
        """Fail every pending record with its last error (the retry budget ran out)."""
        failed = [self._failed(i, self._last[i]) for i in self.pending]
        self.pending = []
        return failed

    def codes(self) -> list[str]:
        """The last error codes of the pending records, sorted."""
        return sorted({self._last[i].code for i in self.pending if i in self._last})

    def exhausted(self, attempts: int, seconds: float) -> str:
        """The warning for the pending records when the retry budget ran out."""
        return (
            f"Retry Limit Exceeded: {len(self.pending)} of {len(self.records)} record(s) failed "
            f"after {attempts} attempt(s) in {seconds:.1f}s ({', '.join(self.codes())})"
        )

    def undelivered(self) -> tuple[bytes, ...]:
        """The pending records, in order."""
        return tuple(self.records[i] for i in self.pending)

    def _failed(self, index: int, error: EntryError) -> FailedRecord:
        return FailedRecord(self.records[index], error.code, error.message, self.attempts[index])


def not_ready(info: DeliveryStreamInfo) -> StreamNotReadyError | None:
    """Why a delivery stream cannot take Direct PUT records now, or None when it can."""
    if info.status != "ACTIVE":
        return StreamNotReadyError(
            f"delivery stream {info.name!r} is {info.status}, not ACTIVE: wait until it is "
            f"ACTIVE (or fix it in the Firehose console) before forwarding",
            error_code=info.status,
        )
    if info.stream_type != "DirectPut":
        return StreamNotReadyError(
            f"delivery stream {info.name!r} has source {info.stream_type}; records can only be "
            f"put on a stream whose source is 'Direct PUT': create one with that source",
            error_code=info.stream_type,
        )
    return None


class Stopped(Exception):  # noqa: N818 - a signal inside the forwarder, never escapes it
    """Delivery met an error retrying cannot fix (``error``, caused by ``cause``)."""

    def __init__(self, error: DeliveryError, cause: Exception) -> None:
        """Wrap the error to raise and the exception behind it."""
        super().__init__(str(error))
        self.error = error
        self.cause = cause


@contextmanager
def carrying(
    undelivered: Callable[[], tuple[bytes, ...]], result: Callable[[], ForwardResult]
) -> Iterator[None]:
    """Whatever stops the block raises a DeliveryError carrying what was not delivered.

    Args:
        undelivered: Every record built and not delivered, in order (called once, on error).
        result: The result so far (called once, on error).
    """
    try:
        yield
    except Stopped as stop:
        raise _carry(stop.error, undelivered, result) from stop.cause
    except Exception as exc:
        error = ForwardAbortedError(
            f"forwarding stopped on an unexpected {type(exc).__name__}: {exc}; the records "
            f"built and not delivered are in .undelivered, what happened before in .result"
        )
        raise _carry(error, undelivered, result) from exc


def _carry(
    error: DeliveryError[ForwardResult],
    undelivered: Callable[[], tuple[bytes, ...]],
    result: Callable[[], ForwardResult],
) -> DeliveryError[ForwardResult]:
    error.undelivered = undelivered()
    error.result = result()
    return error


def falls_back(put_mode: str, operation: str, code: str) -> bool:
    """Whether a failed call makes an ``"auto"`` forwarder use ``PutRecord`` from now on.

    Only a ``PutRecordBatch`` denied for lack of permission does (mParticle's template policy
    grants ``firehose:PutRecord`` alone); bad credentials would fail ``PutRecord`` too.
    """
    return put_mode == "auto" and operation == "PutRecordBatch" and code in PERMISSION_DENIED_CODES


def batching_statement(region: str | None, name: str) -> str:
    """The IAM policy statement that lets a forwarder batch again, as JSON."""
    return json.dumps(
        {
            "Effect": "Allow",
            "Action": "firehose:PutRecordBatch",
            "Resource": f"arn:aws:firehose:{region}:<account-id>:deliverystream/{name}",
        }
    )


def doubled_delimiter(info: DeliveryStreamInfo, record_delimiter: bytes) -> str | None:
    """A warning when both the delivery stream and the forwarder delimit records, else None."""
    if not (info.appends_delimiter and record_delimiter):
        return None
    return (
        f"delivery stream {info.name!r} appends a delimiter to each record itself "
        f"(AppendDelimiterToRecord) and this forwarder ends each record with "
        f"{record_delimiter!r}: S3 objects would hold empty lines; pass record_delimiter=b'' "
        f"(streambridge forward --no-newline)"
    )


#: A call that takes at least this long (seconds) was waiting on the network, not on this
#: process: another call in flight beside it pays.
GROW_ABOVE = 0.010
#: The calls in flight a forwarder starts with.
INITIAL = 4


class ConcurrencyLimit:
    """How many calls may be in flight: additive increase, multiplicative decrease.

    It starts at :data:`INITIAL` (or the maximum, when lower): a small job of a few calls
    then pays one network latency, not one per call. A call that took at least
    :data:`GROW_ABOVE` seconds without backpressure adds one (up to :attr:`maximum`); a call
    that was throttled or failed transiently halves it (down to 1); a fast call leaves it.

    Attributes:
        maximum: The most calls in flight.
        value: The calls allowed in flight now.
    """

    def __init__(self, maximum: int) -> None:
        """A limit that starts at 1 and never exceeds ``maximum``."""
        if maximum < 1:
            msg = f"max_in_flight must be at least 1, got {maximum}"
            raise ValueError(msg)
        self.maximum = maximum
        self.value = min(INITIAL, maximum)

    def record(self, seconds: float, *, backpressure: bool) -> None:
        """Take one group's longest call time, and whether it met backpressure."""
        if backpressure:
            self.value = max(1, self.value // 2)
        elif seconds >= GROW_ABOVE:
            self.value = min(self.maximum, self.value + 1)
