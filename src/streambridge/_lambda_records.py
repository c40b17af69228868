"""The records of a Kinesis event source mapping's event, for both halves' Lambda handlers.

Pure: one record of a Lambda event (``{"kinesis": {...}, "eventSourceARN", "eventID"}``) ->
stream, shard, sequence number and a ``GetRecords``-shaped record, or why it cannot be read;
the ``batchItemFailures`` answer (ReportBatchItemFailures); and whether the invocation is
inside its time margin. The importer's handler and the forwarder's read their events here.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import Any

import attrs

__all__ = [
    "UNKNOWN",
    "LambdaRecord",
    "UnreadableRecord",
    "batch_item_failures",
    "is_kinesis_event",
    "out_of_time",
    "read_record",
    "seconds_left",
]

_STREAM_ARN_MARK = ":stream/"
#: The shard or sequence number of a record that does not say it.
UNKNOWN = "unknown"


def _stream_of(arn: object) -> str | None:
    """``lambda-stream`` of ``arn:aws:kinesis:us-east-2:123456789012:stream/lambda-stream``."""
    if isinstance(arn, str) and _STREAM_ARN_MARK in arn:
        name = arn.rsplit(_STREAM_ARN_MARK, 1)[1].split("/", 1)[0]
        return name or None
    return None


@attrs.frozen
class LambdaRecord:
    """One usable record of the event: where it is from and what the converter reads."""

    stream: str
    shard: str
    sequence: str
    kinesis: dict[str, Any]  # Data, SequenceNumber, ApproximateArrivalTimestamp

    @property
    def data(self) -> bytes:
        """The record's data, decoded from base64."""
        return bytes(self.kinesis["Data"])

    def identity(self) -> dict[str, str]:
        """Stream, shard and sequence number: the fields of a log line about the record."""
        return {"stream": self.stream, "shard": self.shard, "sequence_number": self.sequence}


@attrs.frozen
class UnreadableRecord:
    """A record of the event that cannot be read, and why (``raw``: it as it came, as JSON)."""

    stream: str
    shard: str
    sequence: str
    reason: str
    raw: bytes

    def identity(self) -> dict[str, str]:
        """Stream, shard and sequence number: the fields of a log line about the record."""
        return {"stream": self.stream, "shard": self.shard, "sequence_number": self.sequence}


def _as_bytes(raw: object) -> bytes:
    """A record that cannot be read, as it came (for the log and dead letters)."""
    return json.dumps(raw, default=str, ensure_ascii=False).encode()


def read_record(raw: object, fallback_stream: str) -> LambdaRecord | UnreadableRecord:
    """One record of a Kinesis event, or why it cannot be read (``fallback_stream``: no ARN)."""
    shard, sequence = UNKNOWN, UNKNOWN
    if not isinstance(raw, Mapping) or not isinstance(raw.get("kinesis"), Mapping):
        reason = "not a Kinesis record (no 'kinesis' object)"
        return UnreadableRecord(fallback_stream, shard, sequence, reason, _as_bytes(raw))
    body = raw["kinesis"]
    stream = _stream_of(raw.get("eventSourceARN")) or fallback_stream
    event_id = raw.get("eventID")
    if isinstance(event_id, str) and ":" in event_id:
        shard = event_id.split(":", 1)[0]
    sequence = body.get("sequenceNumber")
    if not isinstance(sequence, str) or not sequence:
        why = "it has no sequenceNumber"
        return UnreadableRecord(stream, shard, UNKNOWN, why, _as_bytes(raw))
    try:
        data = base64.b64decode(body.get("data") or "", validate=True)
    except (binascii.Error, TypeError, ValueError):
        why = "its data is not valid base64"
        return UnreadableRecord(stream, shard, sequence, why, _as_bytes(raw))
    arrival = body.get("approximateArrivalTimestamp")
    record: dict[str, Any] = {"Data": data, "SequenceNumber": sequence}
    if isinstance(arrival, int | float) and not isinstance(arrival, bool):
        record["ApproximateArrivalTimestamp"] = datetime.fromtimestamp(arrival, timezone.utc)
    return LambdaRecord(stream, shard, sequence, record)


def is_kinesis_event(event: object) -> bool:
    """Whether ``event`` is a Kinesis event source mapping's (every record from Kinesis)."""
    records = event.get("Records") if isinstance(event, Mapping) else None
    return isinstance(records, list) and all(
        isinstance(r, Mapping) and r.get("eventSource") == "aws:kinesis" for r in records
    )


def batch_item_failures(sequences: Iterable[str]) -> dict[str, Any]:
    """The answer naming the records to retry (ReportBatchItemFailures), each once, in order.

    The event source mapping retries from the lowest sequence number named, so a handler
    names the first record not done and every record after it.
    """
    return {"batchItemFailures": [{"itemIdentifier": s} for s in dict.fromkeys(sequences)]}


def out_of_time(context: Any, margin: float) -> bool:
    """Whether less than ``margin`` seconds of the invocation are left (no context: never)."""
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    return callable(remaining) and remaining() < margin * 1000


def seconds_left(context: Any, margin: float) -> float | None:
    """Seconds of the invocation left before its ``margin`` (None: no deadline known)."""
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if not callable(remaining):
        return None
    return max(float(remaining()) / 1000 - margin, 0.0)
