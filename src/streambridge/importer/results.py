"""What the importer returns: frozen values; a record that cannot be used is no exception."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import attrs

from streambridge.importer.events import PostHogEvent

__all__ = [
    "ImportResult",
    "ImportTotals",
    "SinkFailure",
    "SinkRefusal",
    "SkippedRecord",
    "refusals_in",
    "skip_fields",
    "skip_summary",
]


@attrs.frozen
class SkippedRecord:
    """A Kinesis record (or one document of it) that could not become a PostHog event.

    The importer's checkpoint moves past it; it is passed to ``on_skip`` and logged (once per
    kind and poll).

    Attributes:
        shard_id: The shard it was read from.
        sequence_number: Its sequence number.
        position: The document's index inside the record (0 unless newline-delimited).
        reason: Why it was skipped (``"not JSON: …"``, ``"no event name at 'a.b'"``…).
        data: The record's data as read (after base64, before decompression); for a user
            record of a KPL-aggregated record, that user record's data.
        sub_sequence: The user record's sub-sequence number inside a KPL-aggregated record
            (None for a plain record).
        stream: The stream it was read from (None where it is not known).
    """

    shard_id: str
    sequence_number: str
    position: int
    reason: str
    data: bytes = attrs.field(repr=lambda data: f"<{len(data)} bytes>")
    sub_sequence: int | None = None
    stream: str | None = None

    #: A dead-letter line keeps the data as read (it may be gzip, or not JSON at all).
    record_is_json: ClassVar[bool] = False

    def dead_letter_fields(self) -> dict[str, Any]:
        """What a dead-letter line says of this record, besides its data."""
        return {
            "kind": "skipped",
            **({} if self.stream is None else {"stream": self.stream}),
            "shard_id": self.shard_id,
            "sequence_number": self.sequence_number,
            "position": self.position,
            "reason": self.reason,
            **({} if self.sub_sequence is None else {"sub_sequence": self.sub_sequence}),
        }

    @property
    def kind(self) -> str:
        """The reason without its details, for counting (``"not JSON"``)."""
        return self.reason.split(":", 1)[0].split(" (", 1)[0]


@attrs.frozen
class SinkFailure:
    """The sink raised for a shard's events; they will be read and offered again.

    Attributes:
        shard_id: The shard whose events the sink refused.
        events: How many events were offered.
        error: ``repr`` of the exception the sink raised.
    """

    shard_id: str
    events: int
    error: str


@attrs.frozen
class SinkRefusal:
    """An event a sink can never deliver (too large, refused by the destination as invalid).

    A sink returns a list of these; the importer counts each as a skipped record with the
    reason (``"refused by the sink: …"``), and moves on.

    Attributes:
        event: The event.
        reason: Why, in a sentence.
    """

    event: PostHogEvent
    reason: str


@attrs.frozen(kw_only=True)
class ImportResult:
    """The outcome of one :meth:`KinesisImporter.poll`.

    Attributes:
        events: The events produced, shard by shard — only when the importer has no sink
            (with a sink they went there, and a result holding them all would make memory
            grow with the shards read; :attr:`event_count` counts them).
        event_count: Events produced (and accepted by the sink, when there is one).
        skipped: Records that could not become events, with reasons.
        lag: ``MillisBehindLatest`` of each shard read in this poll.
        records: Kinesis records read (a newline-delimited record counts once).
        calls: ``GetRecords`` calls made.
        sink_failures: Shards whose events the sink refused (their checkpoints did not move).
        finished_shards: Shards read to their end in this poll (closed after resharding).
        expired_iterators: Iterators that had expired and were renewed from the checkpoint.
        throttled: ``GetRecords`` calls throttled (the shard backs off).
        malformed_answers: ``GetRecords`` / ``GetShardIterator`` answers that were not well
            formed (cut short, garbled…); the shard backs off and asks again.
    """

    events: tuple[PostHogEvent, ...] = ()
    event_count: int = 0
    skipped: tuple[SkippedRecord, ...] = ()
    lag: Mapping[str, int] = attrs.field(factory=dict, hash=False)
    records: int = 0
    calls: int = 0
    sink_failures: tuple[SinkFailure, ...] = ()
    finished_shards: tuple[str, ...] = ()
    expired_iterators: int = 0
    throttled: int = 0
    malformed_answers: int = 0


@attrs.frozen(kw_only=True)
class ImportTotals:
    """What :meth:`KinesisImporter.run` did, in counts (events themselves go to the sink).

    Attributes:
        polls: Polls made.
        events: Events produced.
        skipped: Records skipped.
        records: Kinesis records read.
        calls: ``GetRecords`` calls made.
        sink_failures: Times the sink raised.
        lag: The latest ``MillisBehindLatest`` of each shard.
        stopped_because: ``"stop"``, ``"max_events"``, ``"max_records"``, ``"max_polls"``,
            ``"caught_up"`` or ``"until"``.
        undelivered: Events read but not accepted by the sink when the loop stopped (their
            checkpoints did not move past them: the next run reads them again).
    """

    polls: int = 0
    events: int = 0
    skipped: int = 0
    records: int = 0
    calls: int = 0
    sink_failures: int = 0
    lag: Mapping[str, int] = attrs.field(factory=dict, hash=False)
    stopped_because: str = ""
    undelivered: int = 0

    def add(self, result: ImportResult) -> ImportTotals:
        """These totals with one more poll counted."""
        return attrs.evolve(
            self,
            polls=self.polls + 1,
            events=self.events + result.event_count,
            skipped=self.skipped + len(result.skipped),
            records=self.records + result.records,
            calls=self.calls + result.calls,
            sink_failures=self.sink_failures + len(result.sink_failures),
            lag={**self.lag, **result.lag},
        )


def skip_summary(skipped: Sequence[SkippedRecord]) -> list[str]:
    """One line per kind of skip: how many, and the first one (for the log)."""
    lines = []
    for kind, count in Counter(s.kind for s in skipped).items():
        first = next(s for s in skipped if s.kind == kind)
        lines.append(
            f"skipped {count} record(s): {kind} (first: shard {first.shard_id}, sequence "
            f"{first.sequence_number}: {first.reason})"
        )
    return lines


def skip_fields(skip: SkippedRecord) -> dict[str, Any]:
    """What identifies a skipped record and why, for one structured log line (no data)."""
    return {
        "message": "record skipped",
        "stream": skip.stream,
        "shard_id": skip.shard_id,
        "sequence_number": skip.sequence_number,
        "sub_sequence": skip.sub_sequence,
        "position": skip.position,
        "reason": skip.reason,
    }


def refusals_in(answer: object) -> list[SinkRefusal]:
    """The :class:`SinkRefusal` items of a sink's answer (anything else means "all taken")."""
    return [r for r in answer if isinstance(r, SinkRefusal)] if isinstance(answer, list) else []
