"""What a Firehose answer must hold before the forwarder believes it (pure: no I/O, no boto3).

Anything not well formed raises :class:`~streambridge.errors.MalformedAnswerError`; the
forwarder then treats the call's outcome as unknown and sends its records again (a duplicate is
acceptable, a loss is not). See :mod:`streambridge._answers` for why.

Rules:

* ``PutRecordBatch``: ``RequestResponses`` is a list with exactly one entry per record sent;
  each entry is either delivered (a non-empty string ``RecordId``) or failed (a non-empty
  string ``ErrorCode``); ``FailedPutCount``, when present, equals the number of failed entries.
* ``PutRecord``: a non-empty string ``RecordId``.
* ``DescribeDeliveryStream``: a ``DeliveryStreamDescription`` with name, ARN, status and type
  (its destinations are read for an ``AppendDelimiterToRecord`` processor, when present).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from streambridge._answers import required_text, text
from streambridge.errors import MalformedAnswerError
from streambridge.forwarder.results import DeliveryStreamInfo

__all__ = ["batch_failures", "delivery_stream", "record_id"]

_malformed = MalformedAnswerError.because
_text = text


def batch_failures(response: Mapping[str, Any], sent: int) -> list[tuple[int, str, str]]:
    """Read a ``PutRecordBatch`` answer: which entries failed, and why.

    Args:
        response: The parsed answer.
        sent: How many records the request had.

    Returns:
        ``(index, error_code, error_message)`` for each failed entry, in request order (empty
        when every entry was delivered).

    Raises:
        MalformedAnswerError: The answer does not say, entry by entry, what happened.
    """
    entries = response.get("RequestResponses")
    if not isinstance(entries, list):
        raise _malformed("PutRecordBatch", "has no RequestResponses")
    if len(entries) != sent:
        raise _malformed("PutRecordBatch", f"has {len(entries)} entries for {sent} records")
    if response.get("FailedPutCount") == 0 and all(map(_delivered, entries)):
        return []  # the common answer, checked entry by entry at C speed
    failed: list[tuple[int, str, str]] = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, Mapping):
            raise _malformed("PutRecordBatch", f"entry {index} is not an object")
        code = entry.get("ErrorCode")
        if _text(code):
            failed.append((index, str(code), str(entry.get("ErrorMessage") or "")))
        elif not _text(entry.get("RecordId")):
            raise _malformed("PutRecordBatch", f"entry {index} has neither RecordId nor ErrorCode")
    count = response.get("FailedPutCount")
    if count is not None and count != len(failed):
        raise _malformed(
            "PutRecordBatch", f"says FailedPutCount {count!r} but lists {len(failed)} failures"
        )
    return failed


def _delivered(entry: object) -> bool:
    """Whether an entry is a plain dict saying delivered: a RecordId, no ErrorCode."""
    if type(entry) is not dict:
        return False
    record = entry.get("RecordId")
    return type(record) is str and record != "" and not entry.get("ErrorCode")


def record_id(response: Mapping[str, Any]) -> str:
    """The ``RecordId`` of a ``PutRecord`` answer.

    Raises:
        MalformedAnswerError: There is none.
    """
    return required_text(response, "RecordId", "PutRecord")


def delivery_stream(response: Mapping[str, Any]) -> DeliveryStreamInfo:
    """Read a ``DescribeDeliveryStream`` answer.

    Raises:
        MalformedAnswerError: The description lacks a part (cut short, garbled…).
    """
    try:
        description = response["DeliveryStreamDescription"]
        return DeliveryStreamInfo(
            name=description["DeliveryStreamName"],
            arn=description["DeliveryStreamARN"],
            status=description["DeliveryStreamStatus"],
            stream_type=description["DeliveryStreamType"],
            appends_delimiter=_appends_delimiter(description.get("Destinations")),
        )
    except (KeyError, TypeError) as exc:
        raise MalformedAnswerError.unparsable("DescribeDeliveryStream", exc) from exc


def _appends_delimiter(destinations: object) -> bool:
    """Whether a destination has an enabled ``AppendDelimiterToRecord`` processor."""
    for destination in destinations if isinstance(destinations, list) else ():
        for key, described in destination.items() if isinstance(destination, Mapping) else ():
            config = (
                described.get("ProcessingConfiguration") if key.endswith("Description") else None
            )
            if not isinstance(config, Mapping) or config.get("Enabled") is not True:
                continue
            processors = config.get("Processors")
            for processor in processors if isinstance(processors, list) else ():
                if (
                    isinstance(processor, Mapping)
                    and processor.get("Type") == "AppendDelimiterToRecord"
                ):
                    return True
    return False
