"""One forwarding call's records on their way: queued, packed, handed to the sender, counted.

The shell part :class:`~streambridge.forwarder.forwarder.FirehoseForwarder` runs for each
``forward_many``, ``send`` and ``flush``: records are queued, packed into ``PutRecordBatch``
groups, handed to the :class:`~streambridge.forwarder.sending.Sender` (which keeps calls in
flight), and each group's outcome is counted in the call's tally. Whatever stops the call
raises a :class:`~streambridge.errors.DeliveryError` carrying every record not delivered.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

from streambridge._tally import Tally
from streambridge.deadletter import hand_back_said
from streambridge.forwarder.delivery import Stopped, carrying
from streambridge.forwarder.encoding import BatchPacker
from streambridge.forwarder.results import FailedRecord, ForwardResult, Settled
from streambridge.metrics import FORWARDER_FIELDS

if TYPE_CHECKING:
    from streambridge._aws import CallError
    from streambridge.errors import DeliveryError
    from streambridge.forwarder.sending import GroupOutcome, Sender
    from streambridge.metrics import Metrics

__all__ = ["Pipeline", "record_failures"]

logger = logging.getLogger("streambridge.forwarder")


def record_failures(
    failures: list[FailedRecord],
    tally: Tally[ForwardResult],
    on_failure: Callable[[FailedRecord], object] | None,
) -> None:
    """Count records that failed for good, and hand each to ``on_failure``."""
    tally.extend("failed", failures)
    message = "on_failure raised; the record stays in the result's failed"
    hand_back_said(on_failure, failures, logger, message)


class Pipeline:
    """The queue, the packer and the tally of one call, over the forwarder's sender.

    Attributes:
        tally: What the call did so far.
        queue: Records built and not yet packed.
        packer: Records packed into the next group.
    """

    def __init__(
        self,
        sender: Sender,
        packer: BatchPacker,
        on_failure: Callable[[FailedRecord], object] | None,
        fatal: Callable[[CallError], DeliveryError[ForwardResult]],
        metrics: Metrics | None = None,
    ) -> None:
        """A pipeline sending through ``sender``; ``fatal`` names an error retrying cannot fix.

        ``metrics`` get the call's counts as they come, and each call's latency.
        """
        self._metrics = metrics
        self.tally = Tally(
            ForwardResult,
            None if metrics is None else metrics.tap(FORWARDER_FIELDS, sender.stream),
        )
        self.queue: deque[bytes] = deque()
        self.packer = packer
        self._sender, self._on_failure, self._fatal = sender, on_failure, fatal
        self._unsent: list[tuple[int, tuple[bytes, ...]]] = []  # groups stopped, by order
        self._first = sender.next_index  # this call's groups are numbered from here
        self._merged: set[int] = set()  # this call's groups merged past the first gap
        self._through = 0  # how many of this call's first groups are all merged
        self._markers: deque[tuple[int, Settled]] = deque()  # (groups it needs, marker)

    def result(self, pending_sessions: int) -> ForwardResult:
        """The call's frozen result."""
        dropped = sum(self.tally.maps["dropped_reasons"].values())
        return self.tally.freeze(dropped_events=dropped, pending_sessions=pending_sessions)

    def carrying(
        self,
        pending: Callable[[], int],
        unread: Iterator[bytes] = iter(()),  # noqa: B008
    ) -> AbstractContextManager[None]:
        """Whatever stops the block raises a DeliveryError carrying every record not delivered.

        The calls in flight end first (no more retries). Records come in order: those of the
        groups that were stopped, the packer's, the queue's, then ``unread``.
        """

        def undelivered() -> tuple[bytes, ...]:
            self._sender.abandon(self.absorb)
            groups = [records for _, records in sorted(self._unsent, key=lambda u: u[0])]
            self._unsent.clear()
            stopped = tuple(record for group in groups for record in group)
            return stopped + tuple(self.packer.drain()) + tuple(self.queue) + tuple(unread)

        return carrying(undelivered, lambda: self.result(pending()))

    def failed(self, failures: list[FailedRecord]) -> None:
        """Count records that failed for good (``on_failure`` is told, in this thread)."""
        record_failures(failures, self.tally, self._on_failure)

    def pack(self) -> None:
        """Pack the queue; each full group goes to the sender."""
        queue = self.queue
        while queue:
            group = self.packer.add(queue[0])
            queue.popleft()
            if group:
                self.deliver(group)

    def deliver(self, records: list[bytes]) -> None:
        """Hand one group to the sender (it returns once fewer calls are in flight)."""
        if records:
            self._sender.submit(records, self.merge)

    def finish(self) -> None:
        """Send what is packed, wait for every call in flight, tell the markers left."""
        self.pack()
        self.deliver(self.packer.drain())
        self._sender.drain(self.merge)
        self._tell()

    def settle(self, marker: Settled) -> None:
        """Tell ``marker`` once every group holding a record before it has ended; no waiting.

        The records before it are in the groups submitted so far and, when the packer holds
        some, in the next group. Markers settled by the same merge: only the last is told.
        """
        self.pack()
        submitted = self._sender.next_index - self._first
        self._markers.append((submitted + (1 if self.packer.pending else 0), marker))
        self._tell()

    def _tell(self) -> None:
        """Run the ``then`` of the last marker whose groups have all ended, if any."""
        ready = None
        while self._markers and self._markers[0][0] <= self._through:
            ready = self._markers.popleft()[1]
        if ready is not None:
            ready.then()

    def absorb(self, outcome: GroupOutcome) -> None:
        """Count a group's outcome (in this thread: on_failure too); keep what it did not send."""
        self.tally.add("sent", outcome.sent)
        self.tally.add("api_calls", outcome.api_calls)
        self.tally.add("retries", outcome.retries)
        self.tally.add("throttled", outcome.throttled)
        self.tally.add("sent_bytes", outcome.sent_bytes)
        self.tally.add("billed_bytes", outcome.billed_bytes)
        metrics = self._metrics
        if metrics is not None and metrics.enabled:
            stream = self._sender.stream
            for seconds in outcome.call_seconds:
                metrics.observe("aws_call_latency", stream, seconds)
            metrics.set_in_flight(stream, self._sender.in_flight)
        if outcome.failed:
            self.failed(outcome.failed)
        if outcome.stop is not None or outcome.raised is not None:
            self._unsent.append((outcome.index, outcome.undelivered))

    def merge(self, outcome: GroupOutcome) -> None:
        """Count a group's outcome; a group that was stopped stops the call."""
        self.absorb(outcome)
        if outcome.stop is not None:
            raise Stopped(self._fatal(outcome.stop), outcome.stop.error)
        if outcome.raised is not None:
            raise outcome.raised
        self._merged.add(outcome.index - self._first)
        while self._through in self._merged:
            self._merged.discard(self._through)
            self._through += 1
        self._tell()
