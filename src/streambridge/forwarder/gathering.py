"""Records of batches from many threads, delivered in shared Firehose calls.

``streambridge serve`` answers each request only once Firehose has its records. mParticle's
Webhook sends one event per request by default (Send as Batch off), and Firehose counts every
``PutRecordBatch`` against a quota of requests per second (2,000 or 1,000, by region) apart
from its records per second: one call per request would spend the first long before the
second. A :class:`Gatherer` puts the records of the requests that wait at the same moment
into one call (up to 500 records), with a few calls in flight, and tells each request what
became of *its* records. Nothing waits for company: a request arriving while a call slot is
free is sent at once; only requests arriving while every slot is busy share the next call.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import attrs

from streambridge.deadletter import DeadLetterTarget
from streambridge.errors import DeadLetterError, DeliveryError
from streambridge.forwarder.encoding import MAX_BATCH_RECORDS
from streambridge.forwarder.forwarder import FirehoseForwarder
from streambridge.forwarder.results import FailedRecord
from streambridge.retry import is_retryable

__all__ = ["Delivered", "Gatherer"]

logger = logging.getLogger("streambridge.forwarder")


@attrs.frozen
class Delivered:
    """What became of one caller's records.

    Attributes:
        sent: Records Firehose accepted.
        undelivered: Records it did not (after the retry policy), or that were not sent.
        codes: Their error codes (``"ServiceUnavailableException"``…), sorted.
        retryable: Whether sending them again may succeed (every code is a transient one).
        kept: Where they are now: ``"written"`` to the dead letter, ``"NOT written"``,
            ``"none configured"`` or ``""`` when every record was delivered.
    """

    sent: int
    undelivered: int = 0
    codes: tuple[str, ...] = ()
    retryable: bool = True
    kept: str = ""


@attrs.define(eq=False)
class _Waiting:
    records: Sequence[bytes]
    done: Callable[[Delivered], object]


class Gatherer:
    """Delivers records handed over from many threads, in shared calls; thread-safe.

    Example::

        gatherer = Gatherer(lambda: FirehoseForwarder(client, settings))
        records, prepared = forwarder.prepare(batch)
        delivered = gatherer.deliver(records)   # returns once Firehose answered for them

    The sends run in the gatherer's own threads (``calls`` of them, started as needed), so a
    caller waiting for its outcome holds none: :meth:`submit` takes a callback (an event
    loop's ``call_soon_threadsafe`` …), :meth:`deliver` waits for it.
    """

    def __init__(
        self,
        forwarders: Callable[[], FirehoseForwarder],
        *,
        calls: int = 4,
        dead_letter: DeadLetterTarget | None = None,
        max_records: int = MAX_BATCH_RECORDS,
    ) -> None:
        """A gatherer.

        Args:
            forwarders: Makes a forwarder (once in each of the gatherer's threads).
            calls: Shared sends in flight at once (each may be several calls of 500).
            dead_letter: Where records not delivered are written, once each.
            max_records: Records taken into one send (a ``PutRecordBatch`` holds 500).
        """
        if calls < 1:
            msg = f"calls must be at least 1, got {calls}"
            raise ValueError(msg)
        self._forwarders = forwarders
        self.calls = calls
        self.dead_letter = dead_letter
        self.max_records = max_records
        self._queue: deque[_Waiting] = deque()
        self._sending = 0
        self._lock = threading.Lock()
        self._local = threading.local()
        self._pool: ThreadPoolExecutor | None = None
        self.sends = 0  # shared sends made so far (each one or more PutRecordBatch calls)

    def submit(self, records: Sequence[bytes], done: Callable[[Delivered], object]) -> None:
        """Deliver ``records`` with whatever else waits; ``done(outcome)`` once all are settled.

        ``done`` is called from one of the gatherer's threads (at once when ``records`` is
        empty); an exception it raises is not the gatherer's and is dropped.
        """
        if not records:
            done(Delivered(0))
            return
        with self._lock:
            self._queue.append(_Waiting(records, done))
        self._start()

    def deliver(self, records: Sequence[bytes]) -> Delivered:
        """Deliver ``records`` (with whatever else waits); return once each one is settled."""
        outcomes: list[Delivered] = []
        settled = threading.Event()

        def done(outcome: Delivered) -> None:
            outcomes.append(outcome)
            settled.set()

        self.submit(records, done)
        settled.wait()
        return outcomes[0]

    def close(self) -> None:
        """Wait for the sends in flight and stop the threads (submit starts them again)."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)

    def _start(self) -> None:
        """Start sends while callers wait and a slot is free."""
        while True:
            with self._lock:
                if not self._queue or self._sending >= self.calls:
                    return
                taken = self._take()
                self._sending += 1
                self.sends += 1
                pool = self._pool = self._pool or self._new_pool()
            try:
                pool.submit(self._run, taken)
            except RuntimeError:  # close() shut that pool down meanwhile: a new one takes it
                with self._lock:
                    if self._pool is pool or self._pool is None:
                        self._pool = self._new_pool()
                    pool = self._pool
                pool.submit(self._run, taken)

    def _new_pool(self) -> ThreadPoolExecutor:
        return ThreadPoolExecutor(self.calls, thread_name_prefix="sb-gather")

    def _run(self, taken: list[_Waiting]) -> None:
        try:
            self._send(taken)
        except Exception:  # its callers were told; a bug of ours, said here
            logger.exception("a shared send to Firehose failed")
        finally:
            with self._lock:
                self._sending -= 1
            self._start()

    def _take(self) -> list[_Waiting]:
        """The oldest waiting callers, up to ``max_records`` records (at least one caller)."""
        taken = [self._queue.popleft()]
        count = len(taken[0].records)
        while self._queue and count + len(self._queue[0].records) <= self.max_records:
            count += len(self._queue[0].records)
            taken.append(self._queue.popleft())
        return taken

    def _forwarder(self) -> FirehoseForwarder:
        forwarder: FirehoseForwarder | None = getattr(self._local, "forwarder", None)
        if forwarder is None:
            forwarder = self._local.forwarder = self._forwarders()
        return forwarder

    def _send(self, taken: list[_Waiting]) -> None:
        """One shared send; every caller in ``taken`` gets its outcome, whatever happens."""
        records = [record for waiting in taken for record in waiting.records]
        failed: dict[bytes, str] = {}
        letters: list[FailedRecord] = []
        undelivered: tuple[bytes, ...] = ()
        error = ("NotDelivered", "")
        try:
            result = self._forwarder().send(records)
            letters = list(result.failed)
        except DeliveryError as exc:
            letters = list(exc.result.failed) if exc.result is not None else []
            undelivered = exc.undelivered
            error = (exc.error_code or "NotDelivered", str(exc))
        except BaseException:  # a bug of ours, or the interpreter leaving: nobody waits forever
            self._settle(taken, dict.fromkeys(records, "NotDelivered"), "NOT written")
            raise
        for letter in letters:
            failed.setdefault(letter.data, letter.error_code)
        for record in undelivered:
            failed.setdefault(record, error[0])
        kept = self.keep(letters, undelivered, *error) if failed else ""
        self._settle(taken, failed, kept)

    @staticmethod
    def _settle(taken: list[_Waiting], failed: dict[bytes, str], kept: str) -> None:
        for waiting in taken:
            codes = [failed[r] for r in waiting.records if r in failed]
            outcome = Delivered(
                sent=len(waiting.records) - len(codes),
                undelivered=len(codes),
                codes=tuple(sorted(set(codes))),
                retryable=all(is_retryable(code, None) for code in codes),
                kept=kept if codes else "",
            )
            with contextlib.suppress(Exception):  # the caller's; it must not stop the others
                waiting.done(outcome)

    def keep(
        self, letters: list[FailedRecord], undelivered: tuple[bytes, ...], code: str, message: str
    ) -> str:
        """Write records not delivered to the dead letter; say where they are now.

        Args:
            letters: Records that failed, with their reasons.
            undelivered: Records a call-level error left unsent, all for ``code``/``message``.
            code: The error code of ``undelivered``.
            message: The error message of ``undelivered``.
        """
        if self.dead_letter is None:
            return "none configured"
        try:
            if letters:
                self.dead_letter.write(letters)
            if undelivered:
                self.dead_letter.write_undelivered(undelivered, code, message)
        except DeadLetterError:
            return "NOT written (the dead letter refused them)"
        return "written"
