"""What an AWS answer must hold before it is believed (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from streambridge import MalformedAnswerError
from streambridge.forwarder.answers import batch_failures, record_id

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


def test_record_id() -> None:
    """PutRecord needs a RecordId."""
    assert "r" == record_id({"RecordId": "r"})
    with pytest.raises(MalformedAnswerError, match="PutRecord answered 200 but has no RecordId"):
        record_id({})
