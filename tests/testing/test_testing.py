"""streambridge.testing: the helpers our users' test suites rely on."""

from __future__ import annotations

import json

import pytest

from streambridge.testing import (
    FaultInjector,
    LocalAWS,
    PartialFailure,
    expired_iterator,
    split_records,
)

pytestmark = pytest.mark.integration


def test_kinesis_helpers_round_trip(aws: LocalAWS) -> None:
    """create_stream / put_records / read_stream put and read back every record."""
    aws.create_stream("s", shards=3)
    assert 3 == aws.put_records("s", [{"n": 1}, b"raw", "text"])
    assert sorted([b'{"n": 1}', b"raw", b"text"]) == sorted(aws.read_stream("s"))


def test_partial_put_records_failure_and_recording(aws: LocalAWS) -> None:
    """PartialFailure fails some PutRecords entries for real; sent_records sees every send."""
    aws.create_stream("s", shards=1)
    kinesis = aws.client("kinesis")
    with FaultInjector(kinesis, keep_requests=True) as faults:
        faults.add(
            "PutRecords",
            PartialFailure(
                fraction=0.5, seed=3, error_code="ProvisionedThroughputExceededException"
            ),
        )
        response = kinesis.put_records(
            StreamName="s",
            Records=[{"Data": f"r{n}".encode(), "PartitionKey": "k"} for n in range(10)],
        )
        failed = [n for n, r in enumerate(response["Records"]) if "ErrorCode" in r]
        assert failed
        assert len(failed) == response["FailedRecordCount"]
        assert {"ProvisionedThroughputExceededException"} == {
            response["Records"][n]["ErrorCode"] for n in failed
        }
        stored = sorted(aws.read_stream("s"))
        assert sorted(f"r{n}".encode() for n in range(10) if n not in failed) == stored
        assert [f"r{n}".encode() for n in range(10)] == faults.sent_records()[:10]


def test_expired_iterator_fault(aws: LocalAWS) -> None:
    """expired_iterator() makes GetRecords raise the modelled exception."""
    aws.create_stream("s", shards=1)
    kinesis = aws.client("kinesis")
    iterator = kinesis.get_shard_iterator(
        StreamName="s", ShardId="shardId-000000000000", ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    with FaultInjector(kinesis) as faults:
        faults.add("GetRecords", expired_iterator())
        with pytest.raises(kinesis.exceptions.ExpiredIteratorException):
            kinesis.get_records(ShardIterator=iterator)
        assert [] == kinesis.get_records(ShardIterator=iterator)["Records"]  # queue used up


def test_partial_failure_refuses_other_operations(aws: LocalAWS) -> None:
    """PartialFailure applies to the two batch puts only."""
    kinesis = aws.client("kinesis")
    with FaultInjector(kinesis) as faults:
        faults.add("ListStreams", PartialFailure())
        with pytest.raises(ValueError, match="PutRecordBatch and PutRecords"):
            kinesis.list_streams()


def test_split_records() -> None:
    """Concatenated and newline-delimited JSON records split alike."""
    assert [{"a": 1}, [2], "x", 3] == split_records(b'{"a":1}[2]\n"x"\n 3 ')
    assert [] == split_records(b"  \n")
    assert (
        json.loads('{"big": 18446744073709551617}')
        == split_records(b'{"big": 18446744073709551617}')[0]
    )


def test_fake_clock() -> None:
    """FakeClock moves on sleep (recorded) and advance (not recorded), never backwards."""
    from streambridge.testing import FakeClock  # noqa: PLC0415

    clock = FakeClock(10.0)
    clock.sleep(1.5)
    clock.sleep(-3)
    clock.advance(2)
    assert (13.5, [1.5, -3]) == (clock(), clock.slept)


def test_requests_are_kept_only_when_asked(aws: LocalAWS) -> None:
    """By default an injector keeps operation names, not payloads (load tests stay flat)."""
    aws.create_stream("s")
    kinesis = aws.client("kinesis")
    with FaultInjector(kinesis) as faults:
        kinesis.put_record(StreamName="s", Data=b"x" * 1000, PartitionKey="k")
    assert ["PutRecord"] == faults.calls
    assert [] == faults.requests
    with pytest.raises(ValueError, match="keep_requests=True"):
        faults.sent_records()
