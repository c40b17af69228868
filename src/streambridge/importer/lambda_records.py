"""The records of a Kinesis event source mapping's event, as the importer's converter reads them.

Pure: one record of a Lambda event (``{"kinesis": {...}, "eventSourceARN", "eventID"}``) ->
stream, shard, sequence number and a ``GetRecords``-shaped record, or why it cannot be read.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

import attrs

from streambridge.importer.results import SkippedRecord

__all__ = ["LambdaRecord", "read_record"]

_STREAM_ARN_MARK = ":stream/"


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


def _as_bytes(raw: object) -> bytes:
    """A record that cannot be read, as it came (for the log and dead letters)."""
    return json.dumps(raw, default=str, ensure_ascii=False).encode()


def read_record(raw: object, fallback_stream: str) -> LambdaRecord | SkippedRecord:
    """One record of a Kinesis event, or why it cannot be read (``fallback_stream``: no ARN)."""
    shard, sequence = "unknown", "unknown"
    if not isinstance(raw, Mapping) or not isinstance(raw.get("kinesis"), Mapping):
        reason = "not a Kinesis record (no 'kinesis' object)"
        return SkippedRecord(shard, sequence, 0, reason, _as_bytes(raw))
    body = raw["kinesis"]
    stream = _stream_of(raw.get("eventSourceARN")) or fallback_stream
    event_id = raw.get("eventID")
    if isinstance(event_id, str) and ":" in event_id:
        shard = event_id.split(":", 1)[0]
    sequence = body.get("sequenceNumber")
    if not isinstance(sequence, str) or not sequence:
        why = "it has no sequenceNumber"
        return SkippedRecord(shard, "unknown", 0, why, _as_bytes(raw), stream=stream)
    try:
        data = base64.b64decode(body.get("data") or "", validate=True)
    except (binascii.Error, TypeError, ValueError):
        why = "its data is not valid base64"
        return SkippedRecord(shard, sequence, 0, why, _as_bytes(raw), stream=stream)
    arrival = body.get("approximateArrivalTimestamp")
    record: dict[str, Any] = {"Data": data, "SequenceNumber": sequence}
    if isinstance(arrival, int | float) and not isinstance(arrival, bool):
        record["ApproximateArrivalTimestamp"] = datetime.fromtimestamp(arrival, timezone.utc)
    return LambdaRecord(stream, shard, sequence, record)
