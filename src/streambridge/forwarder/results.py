"""What the forwarder returns: frozen values; partial failure is no exception."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import attrs

__all__ = [
    "FLUSH",
    "DeliveryStreamInfo",
    "DroppedEvent",
    "FailedRecord",
    "ForwardResult",
    "RejectedBatch",
    "Settled",
    "SkippedBatch",
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

    #: A dead-letter line also holds the record decoded (it is the JSON the forwarder built).
    record_is_json: ClassVar[bool] = True

    def dead_letter_fields(self) -> dict[str, Any]:
        """What a dead-letter line says of this record, besides its data."""
        return {
            "kind": "failed",
            "error_code": self.error_code,
            "error_message": self.error_message,
            "attempts": self.attempts,
        }


@attrs.frozen
class DroppedEvent:
    """A malformed event removed from a batch (not an object, no ``event_type``, bad ``data``).

    Counted in ``ForwardResult.dropped_events`` and passed to the forwarder's ``on_drop``
    (``streambridge forward --dead-letter`` keeps it, with the input line).

    Attributes:
        batch: The batch's index in the input (0-based, as ``RejectedBatch.index``).
        position: The event's index in the batch's ``events``.
        reason: Why it was dropped.
        data: The event as JSON (or, when it cannot be JSON, as readable text).
    """

    batch: int
    position: int
    reason: str
    data: bytes = attrs.field(repr=lambda data: f"<{len(data)} bytes>")

    #: A dead-letter line also holds the event decoded, when it is JSON.
    record_is_json: ClassVar[bool] = True

    def dead_letter_fields(self) -> dict[str, Any]:
        """What a dead-letter line says of this event, besides its data."""
        return {
            "kind": "dropped",
            "batch": self.batch,
            "position": self.position,
            "reason": self.reason,
        }


@attrs.frozen
class DeliveryStreamInfo:
    """What :meth:`FirehoseForwarder.check` found.

    Attributes:
        name: The delivery stream's name.
        arn: Its ARN.
        status: ``"ACTIVE"`` (check raises otherwise).
        stream_type: ``"DirectPut"`` (check raises otherwise).
        appends_delimiter: Whether the delivery stream itself appends a delimiter to each
            record (an enabled ``AppendDelimiterToRecord`` processor).
    """

    name: str
    arn: str
    status: str
    stream_type: str
    appends_delimiter: bool = False


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
        throttled: Calls throttled, wholly or in part (Firehose's "Slow down"
            ``ServiceUnavailableException``, ``ThrottlingException``); their records were
            sent again.
        sent_bytes: The bytes of the records delivered.
        billed_bytes: What Firehose bills for them: each record rounded up to the next 5 KB
            (:attr:`billing_ratio` says how much of that is padding).
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
    throttled: int = 0
    sent_bytes: int = 0
    billed_bytes: int = 0
    pending_sessions: int = 0

    @property
    def billing_ratio(self) -> float:
        """Billed bytes per byte sent (1.0 for nothing sent): 5.0 means records of ~1 KB."""
        return self.billed_bytes / self.sent_bytes if self.sent_bytes else 1.0

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
            throttled=self.throttled + other.throttled,
            sent_bytes=self.sent_bytes + other.sent_bytes,
            billed_bytes=self.billed_bytes + other.billed_bytes,
            pending_sessions=other.pending_sessions,
        )


class _Flush:
    """The type of :data:`FLUSH` (one instance)."""

    def __repr__(self) -> str:
        return "FLUSH"


#: Put it among the batches given to :meth:`FirehoseForwarder.forward_many` to send the
#: records it holds now, without waiting for a full call, and wait for the calls in flight
#: (the input went quiet: a pipe, a socket), so that their records are counted and settled
#: now. It is not a batch: it is not counted, rejected or indexed.
FLUSH = _Flush()


@attrs.frozen
class Settled:
    """A marker among the batches of ``forward_many``: "tell me when all before is settled".

    The forwarder does not stop for it: it goes on reading and sending, and calls
    :attr:`then` as soon as every call holding a record of the batches before the marker has
    ended and each record that failed for good was handed to ``on_failure`` — so every record
    before it is delivered or handed back. A checkpoint saved in :attr:`then` moves only past
    what is settled, and never waits for the calls after it (``streambridge forward
    --checkpoints`` does this). Markers are told in order; when one call's end settles
    several, only the last one's :attr:`then` runs (it stands for all before it). If the call
    stops on an error, the markers not yet settled are never told. Not a batch: it is not
    counted, rejected or indexed. Wait for Complete Batch holds sessions back, so a
    ``Settled`` there stops the call (``ForwardAbortedError``).

    Attributes:
        then: Called with no arguments once everything before is settled.
    """

    then: Callable[[], object]
