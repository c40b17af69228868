"""The shard table: parents before children, where each shard starts, when it is next due.

Pure: the caller passes the time in and saves the checkpoints these functions decide.

* **Order.** A child shard is readable only once its parents were read to their end (or are no
  longer listed: trimmed), so per-key order survives resharding.
* **Start.** A shard with no checkpoint starts at ``TRIM_HORIZON`` when one of its parents was
  known before it was first listed (it was born while we followed the stream), else at the
  configured start position. Where reading began is saved with the shard, so a restart — or
  an expired iterator — before the first record resumes there, never at ``LATEST``. A shard
  already closed when a ``LATEST`` start first sees it holds nothing after that start: it is
  finished at once.
* **Pacing.** At most one ``GetRecords`` per shard every ``min_call_interval``; a shard at its
  tip is read every ``idle_poll_interval``; a shard that failed backs off alone, with capped
  exponential backoff and jitter.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import attrs

from streambridge.importer.settings import ImporterSettings
from streambridge.retry import RetryPolicy

__all__ = [
    "SKEW_MARGIN",
    "Shard",
    "ShardCheckpoint",
    "ShardTable",
    "iterator_request",
    "records_until",
]

#: A LATEST start is remembered this much earlier, so a resume at that time (AT_TIMESTAMP)
#: cannot miss records because of clock skew between this machine and AWS.
SKEW_MARGIN = timedelta(seconds=5)


@attrs.frozen
class ShardCheckpoint:
    """The saved state of one shard.

    Attributes:
        sequence_number: The last record done with, or None when none yet.
        finished: Whether the shard was read to its end (closed and drained).
        start: Where reading began when there was no record yet: ``"TRIM_HORIZON"`` or an
            ISO 8601 time (for a ``LATEST`` or ``AT_TIMESTAMP`` start), so that a restart or an
            expired iterator resumes there instead of at ``LATEST``.
    """

    sequence_number: str | None = None
    finished: bool = False
    start: str | None = None


@attrs.define
class Shard:
    """What the importer knows of one shard.

    Attributes:
        shard_id: The shard.
        parents: Its parent and adjacent parent, when listed.
        closed: Whether the listing gives it an ending sequence number.
        inherits: A parent was known before this shard was first listed: read it all.
        checkpoint: Its saved state.
        iterator: The shard iterator to read with next (None: get one from the checkpoint).
        next_call: When it may be read next (monotonic seconds).
        began: When its last read began (the pacing counts from there, as AWS does).
        failures: Failures in a row (for the backoff).
        at_tip: The last read was at the shard's tip (0 ms behind, short of the limit).
        undelivered: Events of the last read that the sink did not take.
        began_at: The wall-clock time its last read began (for ``run(until=)``).
        done_until: Read up to ``run(until=)``'s instant in this run: a record after it
            was met, or the tip was reached after it.
    """

    shard_id: str
    parents: tuple[str, ...]
    closed: bool
    inherits: bool
    checkpoint: ShardCheckpoint = attrs.Factory(ShardCheckpoint)
    iterator: str | None = None
    next_call: float = 0.0
    began: float = 0.0
    failures: int = 0
    at_tip: bool = False
    undelivered: int = 0
    began_at: datetime | None = None
    done_until: bool = False

    def read(self, *, records: int, lag: int, settings: ImporterSettings, now: float) -> None:
        """A read went well: set the tip flag and when the shard is due next."""
        self.failures = 0
        # At the tip: nothing came, or 0 ms behind with room to spare in the call (a full call
        # says more may be waiting, whatever MillisBehindLatest says).
        self.at_tip = not records or (lag == 0 and records < settings.records_per_call)
        interval = settings.idle_poll_interval if self.at_tip else settings.min_call_interval
        self.next_call = now + interval

    def back_off(
        self,
        *,
        backoff: RetryPolicy,
        min_interval: float,
        now: float,
        random: Callable[[], float],
    ) -> None:
        """A read failed: wait longer before the next, the more failures in a row."""
        self.failures += 1
        self.at_tip = False
        self.next_call = now + max(min_interval, backoff.delay(self.failures, random))


class ShardTable:
    """Every shard known, in listing order.

    Attributes:
        shards: Shard id -> :class:`Shard`.
        listed: The shard ids of the last listing.
    """

    def __init__(self) -> None:
        """An empty table."""
        self.shards: dict[str, Shard] = {}
        self.listed: set[str] = set()

    def update(
        self,
        listed: Iterable[Mapping[str, Any]],
        saved: Mapping[str, ShardCheckpoint],
        *,
        start_position: object,
    ) -> list[Shard]:
        """Take a new listing (``ListShards`` shard objects) and the saved checkpoints.

        Returns:
            New shards that are finished at once (closed before a ``LATEST`` start): the
            caller saves their checkpoints, already marked finished here.
        """
        listed = list(listed)
        known_before = set(self.shards) | set(saved)
        self.listed = {item["ShardId"] for item in listed}
        finished: list[Shard] = []
        for item in listed:
            shard_id = item["ShardId"]
            closed = "EndingSequenceNumber" in item.get("SequenceNumberRange", {})
            if shard_id in self.shards:
                self.shards[shard_id].closed = closed
                continue
            parents = tuple(
                p for p in (item.get("ParentShardId"), item.get("AdjacentParentShardId")) if p
            )
            inherits = any(p in known_before for p in parents)
            shard = Shard(
                shard_id, parents, closed, inherits, saved.get(shard_id, ShardCheckpoint())
            )
            self.shards[shard_id] = shard
            untouched = shard.checkpoint == ShardCheckpoint()
            if untouched and closed and not inherits and start_position == "LATEST":
                shard.checkpoint = attrs.evolve(shard.checkpoint, finished=True)
                finished.append(shard)
        return finished

    def readable(self) -> list[Shard]:
        """Unfinished shards whose parents are finished (or no longer listed: trimmed)."""
        out = []
        for shard in self.shards.values():
            if shard.checkpoint.finished:
                continue
            parents = [self.shards.get(p) for p in shard.parents]
            if all(p is None or p.checkpoint.finished for p in parents):
                out.append(shard)
        return out

    def next_due(self, next_refresh: float) -> float:
        """When something is due next: a readable shard, or the next listing."""
        return min([next_refresh, *(s.next_call for s in self.readable())])

    def caught_up(self) -> bool:
        """Every readable shard's last read was at the tip of the shard, without failure."""
        readable = self.readable()
        return bool(readable) and all(s.failures == 0 and s.at_tip for s in readable)

    def forget_tips(self) -> None:
        """A new run begins: no shard is at its tip, or its window's end, until read there."""
        for shard in self.shards.values():
            shard.at_tip = shard.done_until = False

    def at_until(self) -> bool:
        """Every readable shard was read up to ``run(until=)``'s instant (or none is left)."""
        return all(shard.done_until for shard in self.readable())

    @property
    def undelivered(self) -> int:
        """Events read whose sink call failed and that were not delivered since."""
        return sum(shard.undelivered for shard in self.shards.values())


def iterator_request(
    shard: Shard, settings: ImporterSettings, now: datetime
) -> tuple[dict[str, Any], ShardCheckpoint | None]:
    """The ``GetShardIterator`` parameters for ``shard``, and a checkpoint to save first.

    After the checkpoint's sequence number; else where reading began; else — the first time —
    the start position, with where it began returned to be saved *before* reading.
    """
    checkpoint = shard.checkpoint
    params: dict[str, Any] = {"StreamName": settings.stream_name, "ShardId": shard.shard_id}
    if checkpoint.sequence_number is not None:
        params["ShardIteratorType"] = "AFTER_SEQUENCE_NUMBER"
        params["StartingSequenceNumber"] = checkpoint.sequence_number
        return params, None
    if checkpoint.start == "TRIM_HORIZON":
        params["ShardIteratorType"] = "TRIM_HORIZON"
        return params, None
    if checkpoint.start is not None:
        params["ShardIteratorType"] = "AT_TIMESTAMP"
        params["Timestamp"] = datetime.fromisoformat(checkpoint.start)
        return params, None
    start = settings.start_position
    if shard.inherits or start == "TRIM_HORIZON":
        params["ShardIteratorType"] = begin = "TRIM_HORIZON"
    elif isinstance(start, datetime):
        params["ShardIteratorType"] = "AT_TIMESTAMP"
        params["Timestamp"] = start
        begin = start.isoformat()
    else:
        params["ShardIteratorType"] = "LATEST"
        begin = (now - SKEW_MARGIN).isoformat()
    return params, attrs.evolve(checkpoint, start=begin)


def records_until(records: Sequence[Mapping[str, Any]], until: datetime) -> int | None:
    """Where ``records`` go past ``until``: the index of the first that arrived after it.

    None when none did (a record without ``ApproximateArrivalTimestamp`` is not after it).
    The records after that one are not looked at: a shard is read in order, and stops there.
    """
    for index, record in enumerate(records):
        arrival = record.get("ApproximateArrivalTimestamp")
        if arrival is not None and arrival > until:
            return index
    return None
