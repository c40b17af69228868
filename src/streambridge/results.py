"""What the forwarder and the importer return: frozen values; partial failure is no exception."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import attrs

if TYPE_CHECKING:
    from streambridge.posthog import PostHogEvent

__all__ = [
    "FailedRecord",
    "ForwardResult",
    "ImportResult",
    "ImportTotals",
    "RejectedBatch",
    "SinkFailure",
    "SinkRefusal",
    "SkippedBatch",
    "SkippedRecord",
]


@attrs.frozen
class FailedRecord:
    """A record that was not delivered, with the reason.

    Attributes:
        data: The encoded record, exactly as it would have been sent.
        error_code: The last AWS error code (``"ServiceUnavailableException"``…), or
            ``"RecordTooLarge"`` for a record over the size limit (never sent).
        error_message: The last error message.
        attempts: How many times the record was sent (0 when it was never sent).
    """

    data: bytes = attrs.field(repr=lambda data: f"<{len(data)} bytes>")
    error_code: str
    error_message: str
    attempts: int


@attrs.frozen
class SkippedBatch:
    """A batch the settings say not to send.

    Attributes:
        index: The batch's position in the input of the call (0-based).
        message_id: The batch's ``message_id``, when it has a string one.
        reason: Which setting skipped it, in a sentence.
    """

    index: int
    message_id: str | None
    reason: str


@attrs.frozen
class RejectedBatch:
    """An input that could not be read as a batch at all.

    Attributes:
        index: The input's position in the call (0-based).
        reason: What is wrong with it (``"events is not a list (got a string)"``).
    """

    index: int
    reason: str


@attrs.frozen(kw_only=True)
class ForwardResult:
    """The outcome of :meth:`FirehoseForwarder.forward` and friends.

    Every record built is either counted in :attr:`sent` or listed in :attr:`failed`.

    Attributes:
        sent: Records delivered (acknowledged by Firehose).
        failed: Records not delivered, with the reason; each was also passed to ``on_failure``.
        skipped: Batches not sent because of the settings.
        rejected: Inputs refused because they are not readable batches.
        dropped_events: Malformed events removed from otherwise good batches.
        dropped_reasons: ``dropped_events`` by reason.
        filtered_events: Events removed because a setting turns their type off.
        batches: Inputs seen.
        api_calls: Calls made to Firehose (retries included).
        retries: Calls that were retries.
        pending_sessions: Sessions held back by Wait for Complete Batch after this call;
            :meth:`FirehoseForwarder.flush` sends them.
    """

    sent: int = 0
    failed: tuple[FailedRecord, ...] = ()
    skipped: tuple[SkippedBatch, ...] = ()
    rejected: tuple[RejectedBatch, ...] = ()
    dropped_events: int = 0
    dropped_reasons: Mapping[str, int] = attrs.field(factory=dict, hash=False)
    filtered_events: int = 0
    batches: int = 0
    api_calls: int = 0
    retries: int = 0
    pending_sessions: int = 0

    @property
    def ok(self) -> bool:
        """True when nothing failed and nothing was rejected."""
        return not self.failed and not self.rejected

    def __add__(self, other: ForwardResult) -> ForwardResult:
        """Combine the results of two calls (``pending_sessions`` is the later one's)."""
        if not isinstance(other, ForwardResult):
            return NotImplemented
        reasons = dict(self.dropped_reasons)
        for reason, count in other.dropped_reasons.items():
            reasons[reason] = reasons.get(reason, 0) + count
        return ForwardResult(
            sent=self.sent + other.sent,
            failed=self.failed + other.failed,
            skipped=self.skipped + other.skipped,
            rejected=self.rejected + other.rejected,
            dropped_events=self.dropped_events + other.dropped_events,
            dropped_reasons=reasons,
            filtered_events=self.filtered_events + other.filtered_events,
            batches=self.batches + other.batches,
            api_calls=self.api_calls + other.api_calls,
            retries=self.retries + other.retries,
            pending_sessions=other.pending_sessions,
        )


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
        data: The record's data as read (after base64, before decompression).
    """

    shard_id: str
    sequence_number: str
    position: int
    reason: str
    data: bytes = attrs.field(repr=lambda data: f"<{len(data)} bytes>")

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
        events: Events produced (and accepted by the sink, when there is one), shard by shard.
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
        stopped_because: ``"stop"``, ``"max_events"``, ``"max_polls"`` or ``"caught_up"``.
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
            events=self.events + len(result.events),
            skipped=self.skipped + len(result.skipped),
            records=self.records + result.records,
            calls=self.calls + result.calls,
            sink_failures=self.sink_failures + len(result.sink_failures),
            lag={**self.lag, **result.lag},
        )
