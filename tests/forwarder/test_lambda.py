"""The forwarder's Lambda handler: HTTP (function URL, API Gateway v1 / v2) and Kinesis events."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from streambridge import FirehoseForwarder, ForwarderSettings, RetryPolicy
from streambridge._environment import Configured
from streambridge.deadletter_remote import S3DeadLetters
from streambridge.errors import ConfigurationError
from streambridge.forwarder import aws_lambda
from streambridge.forwarder.aws_lambda import handler_from_environment, make_handler
from streambridge.forwarder.webhook import WebhookReceiver
from streambridge.testing import FakeClock, FaultInjector, Latency, LocalAWS, throttling

SECRET = "Basic bGFtYmRh"  # noqa: S105 - a test value
STREAM = "lambda-hook"
ARN = "arn:aws:kinesis:us-east-1:123456789012:stream/mparticle"


def handler(aws: LocalAWS, client: Any = None) -> Any:
    """A handler forwarding to STREAM, one record per event, a short fake-clock budget."""
    clock = FakeClock()
    settings = ForwarderSettings(delivery_stream_name=STREAM, send_as_batch=False)
    firehose = client or aws.client("firehose")
    retry = RetryPolicy(max_attempts=3, max_elapsed=5)
    receiver = WebhookReceiver(
        lambda: FirehoseForwarder(firehose, settings, retry=retry, sleep=clock.sleep, clock=clock),
        authorization=SECRET,
    )
    return make_handler(receiver)


def url_event(body: bytes, *, authorization: str | None = SECRET, b64: bool = True) -> Any:
    """A Lambda function URL / HTTP API (payload 2.0) POST."""
    headers = {"content-type": "application/json"}
    if authorization is not None:
        headers["authorization"] = authorization
    return {
        "version": "2.0",
        "rawPath": "/",
        "headers": headers,
        "requestContext": {"http": {"method": "POST", "path": "/"}},
        "body": base64.b64encode(body).decode() if b64 else body.decode(),
        "isBase64Encoded": b64,
    }


def kinesis_event(datas: list[bytes]) -> Any:
    """An event source mapping's event: one record per data, sequence numbers 1, 2 and on."""
    return {
        "Records": [
            {
                "eventSource": "aws:kinesis",
                "eventSourceARN": ARN,
                "eventID": f"shardId-000000000000:{n + 1}",
                "kinesis": {"data": base64.b64encode(data).decode(), "sequenceNumber": str(n + 1)},
            }
            for n, data in enumerate(datas)
        ]
    }


def test_a_function_url_post_is_answered_as_serve_answers(aws: LocalAWS, ios: Any) -> None:
    """Payload 2.0, base64 or not: 200 once delivered; 401 without the header; JSON bodies."""
    aws.create_delivery_stream(STREAM)
    handle = handler(aws)
    body = json.dumps(ios).encode()
    answer = handle(url_event(body), None)
    assert 200 == answer["statusCode"]
    assert json.loads(answer["body"])["sent"] == len(ios["events"]) == len(aws.delivered(STREAM))
    assert "application/json" == answer["headers"]["content-type"]
    assert 200 == handle(url_event(body, b64=False), None)["statusCode"]
    assert 401 == handle(url_event(body, authorization=None), None)["statusCode"]
    assert 400 == handle({**url_event(body), "body": "%%%"}, None)["statusCode"]


def test_an_api_gateway_rest_post_is_answered_too(aws: LocalAWS, web: Any) -> None:
    """Payload 1.0 (REST API): httpMethod, path, headers in any case."""
    aws.create_delivery_stream(STREAM)
    event = {
        "httpMethod": "POST",
        "path": "/mparticle",
        "headers": {"Authorization": SECRET},
        "requestContext": {"stage": "prod"},
        "body": json.dumps(web),
        "isBase64Encoded": False,
    }
    assert 200 == handler(aws)(event, None)["statusCode"]
    assert 405 == handler(aws)({**event, "httpMethod": "PUT"}, None)["statusCode"]


def test_kinesis_records_are_batches_and_failures_start_at_the_first_not_delivered(
    aws: LocalAWS, ios: Any, web: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Three batches and one record that is no batch: skipped with its identity, never failed.

    With Firehose throttling past the budget, every record from the first is reported.
    """
    aws.create_delivery_stream(STREAM)
    datas = [json.dumps(ios).encode(), b"not a batch", json.dumps(web).encode()]
    answer = handler(aws)(kinesis_event(datas), None)
    assert {"batchItemFailures": []} == answer
    settings = ForwarderSettings(delivery_stream_name=STREAM, send_as_batch=False)
    probe = FirehoseForwarder(aws.client("firehose"), settings)
    expected = [r for batch in (ios, web) for r in probe.prepare(batch)[0]]
    delivered = [json.dumps(d, separators=(",", ":")) for d in aws.delivered(STREAM)]
    assert len(expected) == len(delivered) > len(ios["events"])
    assert "record skipped" in caplog.text
    assert '"sequence_number": "2"' in caplog.text
    assert '"stream": "mparticle"' in caplog.text
    client = aws.client("firehose")
    with FaultInjector(client) as faults:
        faults.always("PutRecordBatch", throttling("ServiceUnavailableException"))
        answer = handler(aws, client)(kinesis_event(datas), None)
    assert ["1", "2", "3"] == [f["itemIdentifier"] for f in answer["batchItemFailures"]]


def test_an_event_of_another_shape_is_refused(aws: LocalAWS) -> None:
    """Neither HTTP nor Kinesis: a ValueError (the invocation fails, nothing is dropped)."""
    with pytest.raises(ValueError, match="neither"):
        handler(aws)({"Records": [{"eventSource": "aws:sqs"}]}, None)


def test_the_zero_code_handler_is_configured_by_the_environment(
    aws: LocalAWS, monkeypatch: pytest.MonkeyPatch, ios: Any
) -> None:
    """STREAMBRIDGE_DELIVERY_STREAM, _MPARTICLE_SETTINGS, _AUTHORIZATION; misspellings refused."""
    aws.create_delivery_stream(STREAM)
    for name, value in aws.environment().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("STREAMBRIDGE_DELIVERY_STREAM", STREAM)
    monkeypatch.setenv("STREAMBRIDGE_MPARTICLE_SETTINGS", json.dumps({"Send as Batch": False}))
    monkeypatch.setenv("STREAMBRIDGE_AUTHORIZATION", SECRET)
    monkeypatch.setattr(aws_lambda, "_configured", Configured(handler_from_environment))
    answer = aws_lambda.handler(url_event(json.dumps(ios).encode()), None)
    assert 200 == answer["statusCode"]
    assert len(ios["events"]) == len(aws.delivered(STREAM))
    env = {"STREAMBRIDGE_DELIVERY_STREAM": STREAM, "STREAMBRIDGE_AUTHORIZATON": SECRET}
    with pytest.raises(ConfigurationError, match="did you mean 'STREAMBRIDGE_AUTHORIZATION'"):
        handler_from_environment(env)
    with pytest.raises(ConfigurationError, match="STREAMBRIDGE_NO_AUTH"):
        handler_from_environment({"STREAMBRIDGE_DELIVERY_STREAM": STREAM})
    with pytest.raises(ConfigurationError, match="STREAMBRIDGE_DELIVERY_STREAM is not set"):
        handler_from_environment({"STREAMBRIDGE_NO_AUTH": "true"})
    bad = {"STREAMBRIDGE_DELIVERY_STREAM": STREAM, "STREAMBRIDGE_NO_AUTH": "true"}
    with pytest.raises(ConfigurationError, match="not JSON"):
        handler_from_environment({**bad, "STREAMBRIDGE_MPARTICLE_SETTINGS": "{"})
    with pytest.raises(ConfigurationError, match="Send as Btch"):
        handler_from_environment({**bad, "STREAMBRIDGE_MPARTICLE_SETTINGS": '{"Send as Btch": 1}'})


def test_a_record_without_a_sequence_number_is_skipped_not_a_crash(
    aws: LocalAWS, ios: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A Kinesis record with no sequenceNumber: skipped with its reason; the others go.

    Before, with a failure before it, the handler raised KeyError building the answer.
    """
    aws.create_delivery_stream(STREAM)
    datas = [json.dumps(ios).encode()] * 3
    event = kinesis_event(datas)
    del event["Records"][1]["kinesis"]["sequenceNumber"]
    assert {"batchItemFailures": []} == handler(aws)(event, None)
    assert "it has no sequenceNumber" in caplog.text
    settings = ForwarderSettings(delivery_stream_name=STREAM, send_as_batch=False)
    expected = FirehoseForwarder(aws.client("firehose"), settings).prepare(ios)[0]
    assert 2 * len(expected) == len(aws.delivered(STREAM))
    client = aws.client("firehose")
    with FaultInjector(client) as faults:
        faults.always("PutRecordBatch", throttling("ServiceUnavailableException"))
        answer = handler(aws, client)(event, None)
    assert ["1", "3"] == [f["itemIdentifier"] for f in answer["batchItemFailures"]]


def test_a_record_that_is_no_batch_and_cannot_be_kept_is_sent_again(
    aws: LocalAWS, ios: Any
) -> None:
    """Its dead letter cannot be written (no such bucket): it and those after it are retried.

    Before, it counted as done: written nowhere, never read again.
    """
    aws.create_delivery_stream(STREAM)
    letters = S3DeadLetters(aws.client("s3"), "s3://no-such-bucket/dead/")
    settings = ForwarderSettings(delivery_stream_name=STREAM, send_as_batch=False)
    firehose = aws.client("firehose")
    receiver = WebhookReceiver(
        lambda: FirehoseForwarder(firehose, settings), authorization=SECRET, dead_letter=letters
    )
    datas = [json.dumps(ios).encode(), b"not a batch", json.dumps(ios).encode()]
    answer = make_handler(receiver)(kinesis_event(datas), None)
    assert ["2", "3"] == [f["itemIdentifier"] for f in answer["batchItemFailures"]]


class _Context:
    """A Lambda context with ``left`` milliseconds of the invocation left."""

    def __init__(self, left: int) -> None:
        self.left = left

    def get_remaining_time_in_millis(self) -> int:
        return self.left


def test_records_not_settled_within_the_time_margin_are_reported(aws: LocalAWS, ios: Any) -> None:
    """Firehose slower than the time left: every record is reported, none counted as done."""
    aws.create_delivery_stream(STREAM)
    firehose = aws.client("firehose")
    settings = ForwarderSettings(delivery_stream_name=STREAM, send_as_batch=False)
    receiver = WebhookReceiver(lambda: FirehoseForwarder(firehose, settings), authorization=SECRET)
    datas = [json.dumps(ios).encode()] * 3
    with Latency(firehose, 2.0):
        answer = make_handler(receiver, time_margin=1.0)(kinesis_event(datas), _Context(1_100))
    assert ["1", "2", "3"] == [f["itemIdentifier"] for f in answer["batchItemFailures"]]
    receiver.close()
    answer = make_handler(receiver, time_margin=1.0)(kinesis_event(datas), _Context(60_000))
    assert {"batchItemFailures": []} == answer
