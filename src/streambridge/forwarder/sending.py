"""The calls in flight: groups of records delivered with retries, several at a time.

The forwarder builds groups (``PutRecordBatch``-sized) in its own thread and hands each to a
:class:`Sender`. A group is delivered by its retry loop — send, read entry by entry
(:mod:`~streambridge.forwarder.calls`), settle each record in the ledger, wait, send what is
left — and the loop's whole outcome (sent, failed, calls, retries, or the error that stopped
it with the records not delivered) comes back as a :class:`GroupOutcome`, merged into the
result in the forwarder's thread only (``on_failure`` is never called from another thread).

Up to :attr:`Sender.limit` groups are in flight; the forwarder's thread waits when the
pipeline is full. The limit adapts (:class:`~streambridge.forwarder.delivery.ConcurrencyLimit`):
it starts at four, grows by one after each call that took long enough for overlapping to pay
(waiting on the network, not on this process), and halves on throttling. At one call at a
time (``max_in_flight=1``, or after throttling) a group is delivered in the calling thread,
exactly as a sequential forwarder would.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

import attrs

from streambridge._aws import CallError, fatal_error, within_pool
from streambridge.errors import DeliveryError
from streambridge.forwarder.calls import put_batch, put_singly
from streambridge.forwarder.delivery import (
    ConcurrencyLimit,
    EntryError,
    Ledger,
    batching_statement,
    falls_back,
)
from streambridge.forwarder.results import FailedRecord
from streambridge.forwarder.settings import PutMode
from streambridge.retry import CONNECTION_ERROR, THROTTLING_CODES, RetryPolicy

__all__ = ["THROTTLED", "GroupOutcome", "Sender", "fatal_delivery_error"]

logger = logging.getLogger("streambridge.forwarder")

#: Firehose's answers to a caller over its throughput: per record, "Slow down"
#: (``ServiceUnavailableException``); per call, throttling.
THROTTLED = THROTTLING_CODES | {
    "ServiceUnavailableException",
    "ThrottlingException",
    "Throttling",
    "TooManyRequestsException",
}


@attrs.define
class GroupOutcome:
    """What delivering one group came to.

    Attributes:
        index: The group's place in the order groups were handed over.
        sent: Records delivered.
        failed: Records that failed for good.
        api_calls: Calls made.
        retries: Rounds that were retries.
        throttled: Calls throttled, wholly or in part.
        sent_bytes: The bytes of the records delivered.
        billed_bytes: What Firehose bills for them (each record rounded up to 5 KB).
        call_seconds: How long each call took, by the forwarder's clock.
        backpressure: Whether a call was throttled or failed transiently.
        seconds: The longest call, by the forwarder's clock.
        stop: The error retrying cannot fix that stopped the group, if any.
        raised: An unexpected exception that stopped it, if any.
        undelivered: The records not delivered when it stopped, in order.
    """

    index: int
    sent: int = 0
    failed: list[FailedRecord] = attrs.Factory(list)
    api_calls: int = 0
    retries: int = 0
    throttled: int = 0
    sent_bytes: int = 0
    billed_bytes: int = 0
    call_seconds: list[float] = attrs.Factory(list)
    backpressure: bool = False
    seconds: float = 0.0
    stop: CallError | None = None
    raised: Exception | None = None
    undelivered: tuple[bytes, ...] = ()


class Sender:
    """Delivers groups for one forwarder: the retry loop, the put mode, the calls in flight."""

    def __init__(
        self,
        client: Any,
        stream: str,
        *,
        put_mode: PutMode,
        retry: RetryPolicy,
        max_in_flight: int,
        sleep: Callable[[float], object],
        clock: Callable[[], float],
        random: Callable[[], float],
    ) -> None:
        """A sender of ``stream``'s records through ``client``."""
        self.client = client
        self.stream = stream
        self.put_mode = put_mode
        #: The operation in use now: ``"batch"`` or ``"single"``.
        self.mode: PutMode = "single" if put_mode == "single" else "batch"
        self.retry = retry
        self.limit = ConcurrencyLimit(within_pool(client, max_in_flight, logger))
        self._sleep = sleep
        self._clock = clock
        self._random = random
        self._pool: ThreadPoolExecutor | None = None
        self._in_flight: dict[Future[GroupOutcome], int] = {}
        self._next = 0
        self._lock = threading.Lock()
        self._abort = threading.Event()
        #: Whether any call ever got an answer from the endpoint (not a connection error).
        self.reached = False

    # ------------------------------------------------------------------ the pipeline

    @property
    def in_flight(self) -> int:
        """Groups in flight now."""
        return len(self._in_flight)

    @property
    def next_index(self) -> int:
        """The index the next group submitted gets (groups are numbered in order)."""
        return self._next

    def submit(self, records: list[bytes], merge: Callable[[GroupOutcome], None]) -> None:
        """Deliver a group; returns once fewer than :attr:`limit` groups are in flight."""
        index, self._next = self._next, self._next + 1
        if not self._in_flight and self.limit.value == 1:
            self._merge(self.deliver(index, records), merge)  # in this thread, as sequentially
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.limit.maximum, thread_name_prefix="streambridge")
        self._in_flight[self._pool.submit(self.deliver, index, records)] = index
        while len(self._in_flight) >= self.limit.value:
            self._collect(merge)
        ended = sorted((f for f in self._in_flight if f.done()), key=self._in_flight.__getitem__)
        for future in ended:  # merged now, not when the limit is next reached: what settles
            self._in_flight.pop(future)  # (a checkpoint) is told as soon as it can be
            self._merge(future.result(), merge)

    def drain(self, merge: Callable[[GroupOutcome], None]) -> None:
        """Wait for every group in flight and merge its outcome."""
        while self._in_flight:
            self._collect(merge)

    def abandon(self, merge: Callable[[GroupOutcome], None]) -> None:
        """Stop retrying: the groups in flight end after their current call or wait; merge them."""
        self._abort.set()
        try:
            while self._in_flight:
                done, _ = wait(self._in_flight, return_when=FIRST_COMPLETED)
                for future in done:
                    self._in_flight.pop(future)
                    merge(future.result())
        finally:
            self._abort.clear()

    def _collect(self, merge: Callable[[GroupOutcome], None]) -> None:
        """Merge the groups done once at least one is, in the order they were handed over."""
        done, _ = wait(self._in_flight, return_when=FIRST_COMPLETED)
        for future in sorted(done, key=self._in_flight.__getitem__):
            self._in_flight.pop(future)
            self._merge(future.result(), merge)

    def _merge(self, outcome: GroupOutcome, merge: Callable[[GroupOutcome], None]) -> None:
        self.limit.record(outcome.seconds, backpressure=outcome.backpressure)
        merge(outcome)

    # ------------------------------------------------------------------ one group

    def deliver(self, index: int, records: list[bytes]) -> GroupOutcome:
        """Deliver one group with retries; never raises (what stopped it is in the outcome)."""
        outcome = GroupOutcome(index)
        ledger = Ledger(records)
        try:
            self._deliver(ledger, outcome)
        except Exception as exc:  # noqa: BLE001 - a bug, or a signal: carried by the forwarder
            outcome.raised = exc
            outcome.undelivered = ledger.undelivered()
        return outcome

    def _deliver(self, ledger: Ledger, outcome: GroupOutcome) -> None:
        start = self._clock()
        retry = 0
        while True:
            began = self._clock()
            outcomes, stop = self._attempt(ledger.to_send(), outcome)
            self._note_answers(outcomes)
            took = self._clock() - began
            outcome.seconds = max(outcome.seconds, took)
            outcome.call_seconds.append(took)
            outcome.backpressure |= any(o is not None and o.retryable for o in outcomes)
            if any(o is not None and o.code in THROTTLED for o in outcomes):
                outcome.throttled += 1
            delivered, failed = ledger.settle(outcomes)
            outcome.sent += delivered
            outcome.sent_bytes, outcome.billed_bytes = ledger.delivered_bytes, ledger.billed_bytes
            outcome.failed.extend(failed)
            if stop is not None and self._falls_back(stop):
                continue  # the same records again, one PutRecord each: not a retry
            if stop is not None:
                outcome.stop, outcome.undelivered = stop, ledger.undelivered()
                return
            if ledger.done:
                return
            retry += 1
            wait_for = self.retry.next_delay(retry, self._clock() - start, self._random)
            if wait_for is None and not self.reached:  # the run gives up: stop, carry all
                message = next(o.message for o in outcomes if o is not None)
                operation = "PutRecord" if self.mode == "single" else "PutRecordBatch"
                cause = ConnectionError(message)
                error = CallError(
                    operation, CONNECTION_ERROR, message, None, retryable=False, error=cause
                )
                outcome.stop, outcome.undelivered = error, ledger.undelivered()
                return
            if wait_for is None:
                codes = sorted({o.code for o in outcomes if o is not None})
                logger.warning(
                    "%s",
                    ledger.exhausted(retry, self._clock() - start),
                    extra={
                        "delivery_stream": self.stream,
                        "records": len(ledger.pending),
                        "error_code": ",".join(codes),
                    },
                )
                outcome.failed.extend(ledger.give_up())
                return
            if self._abort.is_set():  # the forwarder is stopping: no more retries
                outcome.raised = InterruptedError("stopped while retrying")
                outcome.undelivered = ledger.undelivered()
                return
            logger.debug(
                "retrying %d record(s) in %.3fs (retry %d)", len(ledger.pending), wait_for, retry
            )
            self._sleep(wait_for)
            outcome.retries += 1

    def _note_answers(self, outcomes: list[EntryError | None]) -> None:
        """Remember whether the endpoint ever answered (anything but a connection error).

        Until it has, a group that runs out of retries gives up on the whole run: a wrong
        endpoint or no network would fail every group the same way, each after the whole
        retry budget.
        """
        if not self.reached and any(o is None or o.code != CONNECTION_ERROR for o in outcomes):
            with self._lock:
                self.reached = True

    def _attempt(
        self, records: list[bytes], outcome: GroupOutcome
    ) -> tuple[list[EntryError | None], CallError | None]:
        """Send once. Per record None (delivered) or why not; and the error that stops it all."""
        put = put_singly if self.mode == "single" else put_batch

        def count() -> None:
            outcome.api_calls += 1

        return put(self.client, self.stream, records, count=count)

    def _falls_back(self, failure: CallError) -> bool:
        """``put_mode="auto"`` and PutRecordBatch denied: use PutRecord from now on."""
        if not falls_back(self.put_mode, failure.operation, failure.code):
            return False
        with self._lock:
            if self.mode == "single":
                return True  # another group switched first (and said so)
            self.mode = "single"
        logger.warning(
            "PutRecordBatch is denied on delivery stream %r (%s); sending one PutRecord per "
            "record from now on. To batch again, allow it: %s",
            self.stream,
            failure.code,
            batching_statement(self.client.meta.region_name, self.stream),
            extra={"delivery_stream": self.stream, "error_code": failure.code},
        )
        return True


_PERMISSION = {"PutRecordBatch": "firehose:PutRecordBatch", "PutRecord": "firehose:PutRecord"}


def fatal_delivery_error(failure: CallError, stream: str, region: str | None) -> DeliveryError:
    """A non-retryable error of a call to ``stream``, as a DeliveryError that says what to do."""
    hint = " on the stream's ARN in the IAM policy"
    if failure.operation == "PutRecordBatch":
        hint += (
            " — or leave put_mode at 'auto' (the default), which falls back to "
            "firehose:PutRecord (mParticle's template policy)"
        )
    return fatal_error(
        failure,
        resource=f"delivery stream {stream!r}",
        region=region,
        not_found_hint="create it (source 'Direct PUT') or fix delivery_stream_name / region",
        permission=_PERMISSION.get(failure.operation, f"firehose:{failure.operation}"),
        permission_hint=hint,
    )
