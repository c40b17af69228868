"""Sink calls in flight across shards, each shard's outcomes taken in the shard's order.

The importer hands a page's events to :class:`HandOver`, which calls the sink in a pool of
``calls`` threads and keeps each shard's pages in a queue. A shard may be read again while its
last page is in flight (up to ``pages_per_shard`` pages held), but the importer takes outcomes
only from the head of each queue (:meth:`HandOver.ready`): a shard's checkpoint moves past a
page only once the sink confirmed it and every page before it. When a page fails, the pages
after it are dropped (:meth:`HandOver.drop`, whatever their own outcome: they are read again
from the checkpoint) and the shard's *epoch* moves, so a read begun before the failure is not
taken either.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

import attrs

from streambridge.importer.events import PostHogEvent
from streambridge.importer.results import SkippedRecord
from streambridge.importer.shards import Shard
from streambridge.importer.sinks import Sink

__all__ = ["PAGES_PER_SHARD", "HandOver", "Handed", "Outcome"]

#: Pages of one shard held at once (in flight, or done and waiting for an earlier one).
PAGES_PER_SHARD = 4


@attrs.frozen
class Outcome:
    """What a sink call gave: its answer, or the exception it raised."""

    answer: object = None
    error: Exception | None = None


@attrs.define(eq=False)
class Handed:
    """One page read from a shard, waiting for its sink call to be confirmed.

    Attributes:
        shard: The shard it was read from.
        records: The page's Kinesis records.
        events: Their events (the sink's call; none: nothing to confirm).
        skipped: Records that gave no event.
        next_iterator: The page's ``NextShardIterator`` (None: the shard's end).
        future: The sink call in flight, or None when there was nothing to send.
        seconds: How long the sink call took, once it ended (None: no call).
    """

    shard: Shard
    records: Sequence[Any]
    events: list[PostHogEvent]
    skipped: list[SkippedRecord]
    next_iterator: str | None
    future: Future[object] | None = None
    seconds: float | None = None

    def done(self) -> bool:
        """Whether its outcome is known."""
        return self.future is None or self.future.done()

    def outcome(self) -> Outcome:
        """The sink's answer or exception (once :meth:`done`)."""
        if self.future is None:
            return Outcome()
        error = self.future.exception()
        if error is None:
            return Outcome(answer=self.future.result())
        if not isinstance(error, Exception):  # KeyboardInterrupt, SystemExit: not ours to keep
            raise error
        return Outcome(error=error)


def _timed(sink: Sink, handed: Handed) -> object:
    """The sink's call with ``handed``'s events; its duration kept on ``handed``."""
    start = time.perf_counter()
    try:
        return sink(handed.events)
    finally:
        handed.seconds = time.perf_counter() - start


class HandOver:
    """Up to ``calls`` sink calls in flight; each shard's pages kept in order."""

    def __init__(self, sink: Sink, calls: int, pages_per_shard: int = PAGES_PER_SHARD) -> None:
        """Call ``sink`` from ``calls`` threads, holding ``pages_per_shard`` pages a shard."""
        self.sink = sink
        self.calls = calls
        self.pages_per_shard = pages_per_shard
        self._pool: ThreadPoolExecutor | None = None
        self._queues: dict[str, deque[Handed]] = {}
        self._epochs: dict[str, int] = {}

    def epoch(self, shard_id: str) -> int:
        """Moves each time the shard's held pages are dropped: a read from before is stale."""
        return self._epochs.get(shard_id, 0)

    def holds(self, shard_id: str | None = None) -> bool:
        """Whether pages of ``shard_id`` (or of any shard) wait for their outcome."""
        if shard_id is None:
            return any(self._queues.values())
        return bool(self._queues.get(shard_id))

    def blocked(self, shard: Shard) -> bool:
        """Whether ``shard`` may not be read now: too many pages held, or its end is held."""
        queue = self._queues.get(shard.shard_id)
        if not queue:
            return False
        return len(queue) >= self.pages_per_shard or shard.iterator is None

    def has_ready(self) -> bool:
        """Whether some shard's first page has its outcome, to be taken now."""
        return any(queue and queue[0].done() for queue in self._queues.values())

    def in_flight(self) -> list[Future[object]]:
        """The sink calls not done yet."""
        return [
            handed.future
            for queue in self._queues.values()
            for handed in queue
            if handed.future is not None and not handed.future.done()
        ]

    def full(self) -> bool:
        """Whether ``calls`` sink calls are in flight already."""
        return len(self.in_flight()) >= self.calls

    def submit(self, handed: Handed) -> None:
        """Queue the page behind its shard's others; call the sink when it has events."""
        if handed.events:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.calls, thread_name_prefix="streambridge-sink")
            handed.future = self._pool.submit(_timed, self.sink, handed)
        self._queues.setdefault(handed.shard.shard_id, deque()).append(handed)

    def wait(self, timeout: float | None = None) -> bool:
        """Until a sink call ends (True) or ``timeout`` seconds pass; False: none in flight."""
        pending = self.in_flight()
        if not pending:
            return False
        done, _ = wait(pending, timeout=timeout, return_when=FIRST_COMPLETED)
        return bool(done)

    def ready(self) -> Iterator[Handed]:
        """Pages whose outcome can be taken: the done heads of each shard's queue, in order.

        Taken pages leave their queue; the caller may :meth:`drop` a shard's others meanwhile.
        """
        for shard_id in list(self._queues):
            while True:
                queue = self._queues.get(shard_id)
                if not queue or not queue[0].done():
                    break
                yield queue.popleft()
            if not self._queues.get(shard_id, True):
                del self._queues[shard_id]

    def drop(self, shard_id: str) -> int:
        """Forget the shard's held pages (they are read again); the events they held."""
        self._epochs[shard_id] = self.epoch(shard_id) + 1
        dropped = self._queues.pop(shard_id, deque())
        for handed in dropped:
            if handed.future is not None:
                handed.future.cancel()  # not begun: never sent
        return sum(len(handed.events) for handed in dropped)

    def drop_all(self) -> None:
        """Forget every held page (the importer stops on an error)."""
        for shard_id in list(self._queues):
            self.drop(shard_id)

    def close(self) -> None:
        """Wait for the calls in flight to end, and let the threads go."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
