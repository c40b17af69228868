"""What an AWS answer must hold before it is believed (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from streambridge import MalformedAnswerError
from streambridge.importer.answers import RecordsPage, records_page, shard_iterator, shards_page

RECORD = {"Data": b"{}", "SequenceNumber": "1"}


def test_shard_iterator() -> None:
    """GetShardIterator needs a ShardIterator."""
    assert "it" == shard_iterator({"ShardIterator": "it"})
    with pytest.raises(MalformedAnswerError, match="has no ShardIterator"):
        shard_iterator({"ShardIterator": None})


def test_records_page() -> None:
    """A GetRecords answer: records, the next iterator (None at the end) and the lag."""
    assert RecordsPage([RECORD], "next", 5) == records_page(
        {"Records": [RECORD], "NextShardIterator": "next", "MillisBehindLatest": 5}
    )
    assert None is records_page({"Records": [], "MillisBehindLatest": 0}).next_iterator


@pytest.mark.parametrize(
    ("answer", "what"),
    [
        ({}, "has no Records"),
        ({"Records": [], "NextShardIterator": "n"}, "has no MillisBehindLatest"),
        ({"Records": [], "MillisBehindLatest": True}, "has no MillisBehindLatest"),
        ({"Records": [{"Data": b""}], "MillisBehindLatest": 0}, "without Data or SequenceNumber"),
        ({"Records": ["x"], "MillisBehindLatest": 0}, "without Data or SequenceNumber"),
        ({"Records": [], "MillisBehindLatest": 0, "NextShardIterator": ""}, "not a string"),
    ],
)
def test_records_page_refuses(answer: dict[str, Any], what: str) -> None:
    """Missing or mistyped parts make a GetRecords answer malformed."""
    with pytest.raises(MalformedAnswerError, match=what):
        records_page(answer)


def test_shards_page() -> None:
    """ListShards: shards with ids, and a string NextToken when there is more."""
    shards = [{"ShardId": "s-1"}]
    assert (shards, None) == shards_page({"Shards": shards})
    assert (shards, "t") == shards_page({"Shards": shards, "NextToken": "t"})
    answers: list[dict[str, Any]] = [{}, {"Shards": [{}]}, {"Shards": shards, "NextToken": 3}]
    for answer in answers:
        with pytest.raises(MalformedAnswerError, match="ListShards answered 200"):
            shards_page(answer)
