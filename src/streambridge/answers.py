"""What an AWS answer must hold before streambridge believes it: one place per operation.

Pure: no I/O, no boto3. botocore does not check that a ``200`` answer is complete — it does not
enforce ``Content-Length``, and it parses a body that is cut short, garbled or of another
operation as ``{}`` (see docs/reliability.md). Reading ``{}`` with ``.get(...)`` defaults would
turn such an answer into "every record delivered" or "the shard has ended": a silent loss.
So every answer the shells act on goes through one of these readers first, and anything
that is not well formed raises :class:`MalformedAnswerError`. The shells treat that as an
unknown outcome: the forwarder sends the whole call's records again (a duplicate is
acceptable, a loss is not); the importer backs off and asks again.

Rules:

* ``PutRecordBatch``: ``RequestResponses`` is a list with exactly one entry per record sent;
  each entry is either delivered (a non-empty string ``RecordId``) or failed (a non-empty
  string ``ErrorCode``); ``FailedPutCount``, when present, equals the number of failed entries.
* ``PutRecord``: a non-empty string ``RecordId``.
* ``GetShardIterator``: a non-empty string ``ShardIterator``.
* ``GetRecords``: ``Records`` is a list of records with bytes ``Data`` and a string
  ``SequenceNumber``; ``MillisBehindLatest`` is an integer; ``NextShardIterator`` is a
  non-empty string, or absent — which the importer believes only for a shard that the shard
  listing says is closed.
* ``ListShards``: ``Shards`` is a list of objects with a string ``ShardId``; ``NextToken`` is a
  string when present.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from streambridge.errors import MalformedAnswerError

__all__ = [
    "RecordsPage",
    "batch_failures",
    "record_id",
    "records_page",
    "shard_iterator",
    "shards_page",
]


def _malformed(operation: str, what: str) -> MalformedAnswerError:
    return MalformedAnswerError(
        f"{operation} answered 200 but {what}: the outcome is unknown, so it is treated as "
        f"not done (retried)",
        operation=operation,
    )


def _text(value: object) -> bool:
    return isinstance(value, str) and bool(value)


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


def _required_text(response: Mapping[str, Any], key: str, operation: str) -> str:
    value = response.get(key)
    if not _text(value):
        raise _malformed(operation, f"has no {key}")
    return str(value)


def record_id(response: Mapping[str, Any]) -> str:
    """The ``RecordId`` of a ``PutRecord`` answer.

    Raises:
        MalformedAnswerError: There is none.
    """
    return _required_text(response, "RecordId", "PutRecord")


def shard_iterator(response: Mapping[str, Any]) -> str:
    """The ``ShardIterator`` of a ``GetShardIterator`` answer.

    Raises:
        MalformedAnswerError: There is none.
    """
    return _required_text(response, "ShardIterator", "GetShardIterator")


@attrs.frozen
class RecordsPage:
    """A well-formed ``GetRecords`` answer.

    Attributes:
        records: The records, as botocore parsed them (``Data`` bytes, ``SequenceNumber``…).
        next_iterator: ``NextShardIterator``; None when the answer has none (the shard has
            ended — to be believed only for a shard listed as closed).
        millis_behind: ``MillisBehindLatest``.
    """

    records: list[dict[str, Any]]
    next_iterator: str | None
    millis_behind: int


def records_page(response: Mapping[str, Any]) -> RecordsPage:
    """Read a ``GetRecords`` answer.

    Raises:
        MalformedAnswerError: ``Records`` or ``MillisBehindLatest`` is missing or of the
            wrong type, a record lacks ``Data`` or ``SequenceNumber``, or
            ``NextShardIterator`` is present but not a non-empty string.
    """
    records = response.get("Records")
    if not isinstance(records, list):
        raise _malformed("GetRecords", "has no Records")
    for record in records:
        if not (
            isinstance(record, Mapping)
            and isinstance(record.get("Data"), (bytes, bytearray))
            and _text(record.get("SequenceNumber"))
        ):
            raise _malformed("GetRecords", "holds a record without Data or SequenceNumber")
    lag = response.get("MillisBehindLatest")
    if not isinstance(lag, int) or isinstance(lag, bool):
        raise _malformed("GetRecords", "has no MillisBehindLatest")
    following = response.get("NextShardIterator")
    if following is not None and not _text(following):
        raise _malformed("GetRecords", "has a NextShardIterator that is not a string")
    return RecordsPage(records, following, lag)


def shards_page(response: Mapping[str, Any]) -> tuple[list[dict[str, Any]], str | None]:
    """Read a ``ListShards`` answer: its shards and its ``NextToken``.

    Raises:
        MalformedAnswerError: ``Shards`` is missing, or a shard has no ``ShardId``.
    """
    shards = response.get("Shards")
    if not isinstance(shards, list):
        raise _malformed("ListShards", "has no Shards")
    for shard in shards:
        if not (isinstance(shard, Mapping) and _text(shard.get("ShardId"))):
            raise _malformed("ListShards", "holds a shard without ShardId")
    token = response.get("NextToken")
    if token is not None and not _text(token):
        raise _malformed("ListShards", "has a NextToken that is not a string")
    return shards, token
