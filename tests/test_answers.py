"""What an AWS answer must hold before it is believed (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from streambridge import MalformedAnswerError
from streambridge.answers import (
    RecordsPage,
    batch_failures,
    record_id,
    records_page,
    shard_iterator,
    shards_page,
)

RECORD = {"Data": b"{}", "SequenceNumber": "1"}


def test_batch_failures_reads_entry_by_entry() -> None:
    """Failed entries by index; every other entry has a RecordId."""
    answer = {
        "FailedPutCount": 1,
        "RequestResponses": [
            {"RecordId": "a"},
            {"ErrorCode": "ServiceUnavailableException", "ErrorMessage": "Slow down."},
            {"RecordId": "c"},
        ],
    }
    assert [(1, "ServiceUnavailableException", "Slow down.")] == batch_failures(answer, 3)
    assert [] == batch_failures({"RequestResponses": [{"RecordId": "a"}]}, 1)  # no count: fine


@pytest.mark.parametrize(
    ("answer", "what"),
    [
        ({}, "has no RequestResponses"),
        ({"FailedPutCount": 0}, "has no RequestResponses"),
        ({"RequestResponses": [{"RecordId": "a"}]}, "has 1 entries for 2 records"),
        ({"RequestResponses": ["a", "b"]}, "entry 0 is not an object"),
        ({"RequestResponses": [{"RecordId": "a"}, {}]}, "entry 1 has neither"),
        ({"RequestResponses": [{"RecordId": ""}, {"RecordId": "b"}]}, "entry 0 has neither"),
        (
            {"FailedPutCount": 1, "RequestResponses": [{"RecordId": "a"}, {"RecordId": "b"}]},
            "says FailedPutCount 1 but lists 0",
        ),
    ],
)
def test_batch_failures_refuses_what_does_not_say(answer: dict[str, Any], what: str) -> None:
    """Anything short of one clear entry per record is malformed: the outcome is unknown."""
    with pytest.raises(MalformedAnswerError, match=what) as info:
        batch_failures(answer, 2)
    assert ("PutRecordBatch", "MalformedAnswer") == (info.value.operation, info.value.code)


def test_record_id_and_shard_iterator() -> None:
    """PutRecord needs a RecordId; GetShardIterator a ShardIterator."""
    assert "r" == record_id({"RecordId": "r"})
    assert "it" == shard_iterator({"ShardIterator": "it"})
    with pytest.raises(MalformedAnswerError, match="PutRecord answered 200 but has no RecordId"):
        record_id({})
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
