"""What a Kinesis answer must hold before the importer believes it (pure: no I/O, no boto3).

Anything not well formed raises :class:`~streambridge.errors.MalformedAnswerError`; the
importer then backs off and asks again from the checkpoint. See :mod:`streambridge._answers`
for why.

Rules:

* ``GetShardIterator``: a non-empty string ``ShardIterator``.
* ``GetRecords``: ``Records`` is a list of records with bytes ``Data`` and a string
  ``SequenceNumber``; ``MillisBehindLatest`` is an integer; ``NextShardIterator`` is a
  non-empty string, or absent — which the importer believes only for a shard that the shard
  listing says is closed.
* ``ListShards``: ``Shards`` is a list of objects with a string ``ShardId``; ``NextToken`` is a
  string when present.
* ``DescribeStream`` (the listing when ``ListShards`` is denied): a ``StreamDescription`` whose
  ``Shards`` is such a list, with a boolean ``HasMoreShards``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from streambridge._answers import required_text, text
from streambridge.errors import MalformedAnswerError

__all__ = [
    "RecordsPage",
    "described_shards_page",
    "records_page",
    "shard_iterator",
    "shards_page",
]

_malformed = MalformedAnswerError.because
_text = text


def shard_iterator(response: Mapping[str, Any]) -> str:
    """The ``ShardIterator`` of a ``GetShardIterator`` answer.

    Raises:
        MalformedAnswerError: There is none.
    """
    return required_text(response, "ShardIterator", "GetShardIterator")


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


def _shards(operation: str, shards: object) -> list[dict[str, Any]]:
    if not isinstance(shards, list):
        raise _malformed(operation, "has no Shards")
    for shard in shards:
        if not (isinstance(shard, Mapping) and _text(shard.get("ShardId"))):
            raise _malformed(operation, "holds a shard without ShardId")
    return shards


def described_shards_page(response: Mapping[str, Any]) -> tuple[list[dict[str, Any]], bool]:
    """Read a ``DescribeStream`` answer: its shards and whether more follow.

    Raises:
        MalformedAnswerError: ``StreamDescription``, its ``Shards`` or ``HasMoreShards`` is
            missing, or a shard has no ``ShardId``.
    """
    description = response.get("StreamDescription")
    if not isinstance(description, Mapping):
        raise _malformed("DescribeStream", "has no StreamDescription")
    shards = _shards("DescribeStream", description.get("Shards"))
    more = description.get("HasMoreShards")
    if not isinstance(more, bool):
        raise _malformed("DescribeStream", "has no HasMoreShards")
    return shards, more


def shards_page(response: Mapping[str, Any]) -> tuple[list[dict[str, Any]], str | None]:
    """Read a ``ListShards`` answer: its shards and its ``NextToken``.

    Raises:
        MalformedAnswerError: ``Shards`` is missing, or a shard has no ``ShardId``.
    """
    shards = _shards("ListShards", response.get("Shards"))
    token = response.get("NextToken")
    if token is not None and not _text(token):
        raise _malformed("ListShards", "has a NextToken that is not a string")
    return shards, token
