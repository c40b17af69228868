"""FirehoseForwarder through real boto3 clients over HTTP to moto's server on 127.0.0.1."""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterator
from typing import Any

import attrs
import pytest

from streambridge import (
    FailedRecord,
    FirehoseForwarder,
    ForwarderSettings,
    ForwardResult,
    StreamNotFoundError,
    StreamNotReadyError,
)
from streambridge.forwarder.encoding import encode_record, encode_record_stdlib
from streambridge.forwarder.filtering import filter_batch
from streambridge.testing import FaultInjector, LocalAWS
from tests.conftest import load_sample

pytestmark = pytest.mark.integration

STREAM = "events"
SETTINGS = ForwarderSettings(delivery_stream_name=STREAM)


def canon(values: list[Any]) -> Counter[str]:
    """A multiset of JSON values (moto's S3 listing order is not put order)."""
    return Counter(json.dumps(v, sort_keys=True) for v in values)


@pytest.fixture(name="stream")
def _stream(aws: LocalAWS) -> LocalAWS:
    aws.create_delivery_stream(STREAM)
    return aws


def forwarder(
    aws: LocalAWS, settings: ForwarderSettings = SETTINGS, **options: Any
) -> FirehoseForwarder:
    """A forwarder on the local AWS that never really sleeps."""
    options.setdefault("sleep", lambda _: None)
    return FirehoseForwarder(aws.client("firehose"), settings, **options)


def test_samples_delivered_as_filtered(stream: LocalAWS, samples: list[dict[str, Any]]) -> None:
    """Each sample arrives as exactly the batch filter_batch produces, one record each."""
    result = forwarder(stream).forward_many(samples)
    expected = [filter_batch(b, SETTINGS) for b in samples]
    assert canon(expected) == canon(stream.delivered(STREAM))
    assert 5 == result.sent == result.batches
    assert 1 == result.api_calls
    assert result.ok
    assert 8 == result.filtered_events
    assert 2 == result.dropped_events


def test_send_as_batch_off_delivers_one_record_per_event(
    stream: LocalAWS, samples: list[dict[str, Any]]
) -> None:
    """Send as Batch off: 52 surviving events, 52 records, each with its envelope."""
    settings = attrs.evolve(SETTINGS, send_as_batch=False)
    result = forwarder(stream, settings).forward_many(samples)
    delivered = stream.delivered(STREAM)
    assert 53 == result.sent == len(delivered)  # 52 events + the eventless S2S batch
    assert all(len(r["events"]) <= 1 for r in delivered)


def test_newline_delimiter(stream: LocalAWS, ios: dict[str, Any]) -> None:
    r"""record_delimiter=b"\n" makes each S3 object newline-delimited JSON."""
    forwarder(stream, attrs.evolve(SETTINGS, send_as_batch=False), record_delimiter=b"\n").forward(
        ios
    )
    (body,) = stream.delivered_objects(STREAM)
    lines = body.split(b"\n")
    assert 14 == len(lines)
    assert b"" == lines[-1]
    assert 13 == len([json.loads(line) for line in lines[:-1]])


def test_big_integers_survive_the_round_trip(stream: LocalAWS, odd: dict[str, Any]) -> None:
    """The odd sample's 2**63 batch_id and 64-bit ids arrive exact."""
    forwarder(stream).forward(odd)
    (record,) = stream.delivered(STREAM)
    assert 2**63 == record["batch_id"]


def test_bad_inputs_are_rejected_and_the_rest_goes_on(
    stream: LocalAWS, ios: dict[str, Any]
) -> None:
    """Non-objects and non-list events are rejected with index and reason; others are sent."""

    def batches() -> Iterator[object]:
        yield "not a batch"
        yield ios
        yield {"events": 5}
        yield load_sample("odd_and_bad_data.json")

    result = forwarder(stream).forward_many(batches())
    assert [
        (0, "batch is not a JSON object (got a string)"),
        (2, "events is not a list (got a number)"),
    ] == [(r.index, r.reason) for r in result.rejected]
    assert 2 == result.sent == len(stream.delivered(STREAM))
    assert not result.ok


def test_skipped_batches_carry_reason_and_message_id(stream: LocalAWS, s2s: dict[str, Any]) -> None:
    """A batch the settings skip is listed with its message_id and not sent."""
    result = forwarder(stream, attrs.evolve(SETTINGS, send_batches_without_events=False)).forward(
        s2s
    )
    assert 0 == result.sent
    (skipped,) = result.skipped
    assert (0, s2s["message_id"]) == (skipped.index, skipped.message_id)
    assert "Send Batches without Events" in skipped.reason
    assert [] == stream.delivered(STREAM)


def test_oversize_batch_is_split_and_lone_giant_event_fails(
    stream: LocalAWS, ios: dict[str, Any]
) -> None:
    """A batch over 1,000 KiB is split into records that fit; an event too big alone fails."""
    big = dict(
        ios,
        events=[
            {"event_type": "custom_event", "data": {"event_name": f"e{i}", "pad": "x" * 300_000}}
            for i in range(7)
        ],
    )
    big["events"][3]["data"]["pad"] = "y" * 1_100_000
    failures: list[FailedRecord] = []
    result = forwarder(stream, on_failure=failures.append).forward(big)
    delivered = stream.delivered(STREAM)
    assert all(len(encode_record(r)) <= 1_024_000 for r in delivered)
    names = sorted(e["data"]["event_name"] for r in delivered for e in r["events"])
    assert ["e0", "e1", "e2", "e4", "e5", "e6"] == names
    assert len(delivered) == result.sent >= 2
    (failed,) = result.failed
    assert failures == [failed]
    assert ("RecordTooLarge", 0) == (failed.error_code, failed.attempts)
    assert "e3" == json.loads(failed.data)["events"][0]["data"]["event_name"]


def test_records_are_packed_500_per_call(stream: LocalAWS, ios: dict[str, Any]) -> None:
    """1,300 one-event records take ceil(1300/500) = 3 PutRecordBatch calls."""
    settings = attrs.evolve(SETTINGS, send_as_batch=False)
    result = forwarder(stream, settings).forward_many([ios] * 100)
    assert (1_300, 3, 0) == (result.sent, result.api_calls, result.retries)
    assert 1_300 == len(stream.delivered(STREAM))


def test_put_record_mode(stream: LocalAWS, samples: list[dict[str, Any]]) -> None:
    """put_mode='single' delivers with one PutRecord per record and no PutRecordBatch."""
    fwd = forwarder(stream, put_mode="single")
    with FaultInjector(fwd.client) as spy:
        result = fwd.forward_many(samples)
    assert {"PutRecord": 5} == Counter(spy.calls)
    assert 5 == result.sent == result.api_calls == len(stream.delivered(STREAM))


def test_wait_for_complete_batch(
    stream: LocalAWS, ios: dict[str, Any], android: dict[str, Any]
) -> None:
    """Uploads of one session are held until session_end, then sent as one record; flush sends the rest."""
    fwd = forwarder(
        stream, attrs.evolve(SETTINGS, wait_for_complete_batch=True, send_as_batch=False)
    )
    events = ios["events"]
    first = fwd.forward(dict(ios, events=events[:6]))
    assert (0, 1) == (first.sent, first.pending_sessions)
    second = fwd.forward_many([dict(ios, events=events[6:]), android])
    assert (1, 1) == (second.sent, second.pending_sessions)
    (merged,) = stream.delivered(STREAM)
    assert filter_batch(ios, SETTINGS)["events"] == merged["events"]  # type: ignore[index]
    flushed = fwd.flush()
    assert (1, 0) == (flushed.sent, fwd.pending_sessions)
    assert 2 == len(stream.delivered(STREAM))
    assert ForwardResult() == forwarder(stream).flush()


def test_wait_for_complete_batch_expires_old_sessions(
    stream: LocalAWS, ios: dict[str, Any]
) -> None:
    """A session older than max_session_age is sent at the end of the next call."""
    now = [0.0]
    fwd = forwarder(
        stream,
        attrs.evolve(SETTINGS, wait_for_complete_batch=True),
        max_session_age=60.0,
        clock=lambda: now[0],
    )
    assert 0 == fwd.forward(dict(ios, events=ios["events"][:3])).sent
    now[0] = 61.0
    assert (1, 0) == (fwd.forward_many([]).sent, fwd.pending_sessions)


def test_check(stream: LocalAWS) -> None:
    """check() describes an ACTIVE Direct PUT stream."""
    info = forwarder(stream).check()
    assert (STREAM, "ACTIVE", "DirectPut") == (info.name, info.status, info.stream_type)
    assert info.arn.endswith(f"deliverystream/{STREAM}")


def test_check_missing_stream(aws: LocalAWS) -> None:
    """A missing stream raises StreamNotFoundError saying what to fix."""
    with pytest.raises(StreamNotFoundError, match=r"create it \(source 'Direct PUT'\)"):
        forwarder(aws).check()


def test_check_refuses_kinesis_source(aws: LocalAWS) -> None:
    """A stream fed by a Kinesis stream cannot take Direct PUT records."""
    kinesis = aws.client("kinesis")
    kinesis.create_stream(StreamName="src", ShardCount=1)
    arn = kinesis.describe_stream_summary(StreamName="src")["StreamDescriptionSummary"]["StreamARN"]
    aws.client("s3").create_bucket(Bucket="src-bucket")
    aws.client("firehose").create_delivery_stream(
        DeliveryStreamName=STREAM,
        DeliveryStreamType="KinesisStreamAsSource",
        KinesisStreamSourceConfiguration={
            "KinesisStreamARN": arn,
            "RoleARN": "arn:aws:iam::123456789012:role/r",
        },
        ExtendedS3DestinationConfiguration={
            "RoleARN": "arn:aws:iam::123456789012:role/r",
            "BucketARN": "arn:aws:s3:::src-bucket",
        },
    )
    with pytest.raises(StreamNotReadyError, match="Direct PUT"):
        forwarder(aws).check()


def test_forward_to_missing_stream_raises_with_every_record(
    aws: LocalAWS, samples: list[dict[str, Any]]
) -> None:
    """ResourceNotFound is fatal: the error carries every record built and the result so far."""
    with pytest.raises(StreamNotFoundError) as info:
        forwarder(aws).forward_many(samples)
    assert 5 == len(info.value.undelivered)
    assert info.value.result is not None
    assert 0 == info.value.result.sent
    assert "ResourceNotFoundException" == info.value.error_code


def test_from_settings_builds_a_client(stream: LocalAWS, ios: dict[str, Any]) -> None:
    """from_settings uses the settings' region and keys, with botocore retries off."""
    settings = attrs.evolve(SETTINGS, access_key_id="testing", secret_access_key="testing")
    fwd = FirehoseForwarder.from_settings(settings, endpoint_url=stream.endpoint_url)
    assert "us-east-1" == fwd.client.meta.region_name
    assert 1 == getattr(fwd.client.meta.config, "retries")["total_max_attempts"]  # noqa: B009
    assert 1 == fwd.forward(ios).sent


def test_options_are_validated(aws: LocalAWS) -> None:
    """Nonsense options fail at construction."""
    with pytest.raises(ValueError, match="put_mode"):
        forwarder(aws, put_mode="bulk")
    with pytest.raises(ValueError, match="max_batch_records"):
        forwarder(aws, max_batch_records=501)


def test_unencodable_payload_fails_without_stopping(stream: LocalAWS, ios: dict[str, Any]) -> None:
    """A batch holding a value JSON cannot represent fails; the next batch is still sent."""
    bad = dict(ios, user_attributes={"x": float("nan")})
    result = forwarder(stream, encoder=encode_record_stdlib).forward_many([bad, ios])
    assert 1 == result.sent
    (failed,) = result.failed
    assert ("EncodingError", 0) == (failed.error_code, failed.attempts)


def test_failures_are_logged_once(stream: LocalAWS, caplog: pytest.LogCaptureFixture) -> None:
    """Oversize records produce one warning per batch, not one per record."""
    giant = {
        "events": [{"event_type": "custom_event", "data": {"p": "x" * 1_100_000}} for _ in range(3)]
    }
    with caplog.at_level(logging.WARNING, logger="streambridge"):
        result = forwarder(stream).forward(giant)
    assert 3 == len(result.failed)
    assert 1 == len(caplog.records)


@pytest.mark.integration
def test_flush_among_the_batches_sends_what_is_held_and_is_not_a_batch(
    aws: LocalAWS, ios: dict[str, Any]
) -> None:
    """FLUSH: the records held go in their own call; FLUSH is not counted, indexed or rejected."""
    from streambridge.forwarder import FLUSH  # noqa: PLC0415

    aws.create_delivery_stream("events")
    forwarder = FirehoseForwarder(
        aws.client("firehose"), ForwarderSettings(delivery_stream_name="events")
    )
    together = forwarder.forward_many([ios, ios])
    apart = forwarder.forward_many([FLUSH, ios, FLUSH, FLUSH, {"events": "no"}, ios])
    assert together.api_calls == 1
    assert apart.api_calls == 2
    assert apart.batches == 3
    assert [r.index for r in apart.rejected] == [1]
    assert repr(FLUSH) == "FLUSH"
