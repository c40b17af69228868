"""The seeds' own IAM policies work with default settings, under moto's IAM enforcement.

Each test makes an IAM user with exactly one seed's documented policy, signs with its keys,
and forwards, imports or checks as that seed's user would. moto matches Firehose and Kinesis
actions against ``"Resource": "*"`` only (moto issue 9581), so the policies below name ``"*"``
where the seeds' documents name the stream's ARN; the actions are the documents' own.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse
from botocore.compat import HTTPHeaders

from streambridge import (
    AccessDeniedError,
    FirehoseForwarder,
    ForwarderSettings,
    ImporterSettings,
    KinesisImporter,
)
from streambridge.cli import main
from streambridge.testing import Credentials, Fault, FaultInjector, LocalAWS
from streambridge.testing.faults import Body

pytestmark = pytest.mark.integration


def policy(*actions: str) -> dict[str, Any]:
    """An IAM policy allowing ``actions`` (on "*": see the module docstring)."""
    return {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": list(actions), "Resource": "*"}],
    }


#: mParticle's "Amazon Kinesis Firehose" setup: the template policy's two actions.
MPARTICLE = policy("firehose:DescribeDeliveryStream", "firehose:PutRecord")
#: PostHog's "Amazon Kinesis Import" app: its documented policy (no kinesis:ListShards).
POSTHOG = policy("kinesis:DescribeStream", "kinesis:GetShardIterator", "kinesis:GetRecords")

STREAM = "mparticle-events"
KINESIS = "app-clicks"
PER_EVENT = ForwarderSettings(delivery_stream_name=STREAM, send_as_batch=False)


def test_mparticle_template_policy_forwards_with_the_defaults(
    aws: LocalAWS, samples: list[dict[str, Any]], caplog: pytest.LogCaptureFixture
) -> None:
    """PutRecordBatch is denied: the forwarder re-sends with PutRecord and says so, once."""
    aws.create_delivery_stream(STREAM)
    user = aws.iam_user("mparticle", MPARTICLE)
    client = aws.client("firehose", credentials=user)
    with aws.enforcing_iam(), FaultInjector(client) as spy, caplog.at_level(logging.WARNING):
        forwarder = FirehoseForwarder(client, PER_EVENT)
        first = forwarder.forward_many(samples)
        second = forwarder.forward_many(samples)
    assert first.ok, first.failed
    assert second.ok
    assert first.sent == second.sent > len(samples)
    assert "single" == forwarder.mode
    assert 1 == spy.calls.count("PutRecordBatch")  # denied once, then never tried again
    assert first.sent + second.sent == spy.calls.count("PutRecord")
    warnings = [r.getMessage() for r in caplog.records if "PutRecordBatch is denied" in r.message]
    assert 1 == len(warnings)
    assert '"Action": "firehose:PutRecordBatch"' in warnings[0]
    assert first.sent + second.sent == len(aws.delivered(STREAM))  # nothing lost


def test_a_pinned_batch_mode_names_the_permission(aws: LocalAWS, ios: dict[str, Any]) -> None:
    """put_mode="batch" under the template policy: a typed AccessDeniedError, not raw XML."""
    aws.create_delivery_stream(STREAM)
    user = aws.iam_user("mparticle", MPARTICLE)
    client = aws.client("firehose", credentials=user)
    with aws.enforcing_iam(), pytest.raises(AccessDeniedError) as info:
        FirehoseForwarder(client, PER_EVENT, put_mode="batch").forward(ios)
    message = str(info.value)
    assert "allow 'firehose:PutRecordBatch'" in message
    assert "<?xml" not in message
    assert "AccessDenied" == info.value.error_code
    assert 13 == len(info.value.undelivered)


def test_unknown_keys_say_the_credentials_are_not_valid(aws: LocalAWS, ios: dict[str, Any]) -> None:
    """A key IAM does not know is refused as bad credentials, not as a missing permission."""
    aws.create_delivery_stream(STREAM)
    client = aws.client("firehose", credentials=Credentials("AKIAUNKNOWN", "nope"))
    with aws.enforcing_iam(), pytest.raises(AccessDeniedError) as info:
        FirehoseForwarder(client, PER_EVENT).forward(ios)
    assert "InvalidClientTokenId" == info.value.error_code
    assert "credentials are not valid" in str(info.value)


def test_posthog_documented_policy_imports_with_describe_stream(
    aws: LocalAWS, caplog: pytest.LogCaptureFixture
) -> None:
    """ListShards is denied: the importer lists shards with DescribeStream and says so, once."""
    aws.create_stream(KINESIS, shards=3)
    records = [{"properties": {"eventName": "Signed Up", "userId": f"u{n}"}} for n in range(30)]
    aws.put_records(KINESIS, records)
    user = aws.iam_user("posthog", POSTHOG)
    settings = ImporterSettings.from_posthog_config(
        {
            "kinesisStreamName": KINESIS,
            "eventKey": "properties.eventName",
            "additionalPropertyMappings": "properties.userId:distinct_id",
        },
        start_position="TRIM_HORIZON",
    )
    events: list[Any] = []
    client = aws.client("kinesis", credentials=user)
    with aws.enforcing_iam(), caplog.at_level(logging.WARNING):
        importer = KinesisImporter(client, settings, sink=events.extend, sleep=lambda _: None)
        totals = importer.run(until_caught_up=True, max_polls=50)
        importer.poll()  # the listing is refreshed later with DescribeStream again, quietly
    assert 30 == totals.events == len({e.uuid for e in events})
    assert {f"u{n}" for n in range(30)} == {e.distinct_id for e in events}
    warnings = [r.getMessage() for r in caplog.records if "ListShards is denied" in r.message]
    assert 1 == len(warnings)
    assert "DescribeStream" in warnings[0]


def check(
    aws: LocalAWS,
    user: Credentials,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    *argv: str,
) -> tuple[int, str, str]:
    """``streambridge check`` signed by ``user``, under IAM enforcement."""
    for name, value in aws.environment(user).items():
        monkeypatch.setenv(name, value)
    with aws.enforcing_iam():
        code = main(["check", *argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def test_check_reports_each_permission_under_the_seed_policies(
    aws: LocalAWS, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Verified, not verified or denied, permission by permission; exit 0 when usable."""
    aws.create_delivery_stream(STREAM)
    aws.create_stream(KINESIS, shards=1)
    code, out, _ = check(
        aws, aws.iam_user("mparticle", MPARTICLE), monkeypatch, capsys, "--firehose-stream", STREAM
    )
    assert 0 == code
    assert "verified      firehose:DescribeDeliveryStream" in out
    assert "not verified  firehose:PutRecordBatch" in out
    code, out, _ = check(
        aws, aws.iam_user("posthog", POSTHOG), monkeypatch, capsys, "--kinesis-stream", KINESIS
    )
    assert 0 == code
    for line in (
        "denied        kinesis:ListShards",
        "verified      kinesis:DescribeStream",
        "verified      kinesis:GetShardIterator",
        "verified      kinesis:GetRecords",
    ):
        assert line in out
    assert json.loads(out[out.index("{") :])["Statement"][0]["Action"][0] == "kinesis:ListShards"


def test_check_exits_3_and_names_the_operation_that_was_refused(
    aws: LocalAWS, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A denied GetShardIterator is reported as GetShardIterator; a denied describe as such."""
    aws.create_delivery_stream(STREAM)
    aws.create_stream(KINESIS, shards=1)
    no_iterator = aws.iam_user("reader", policy("kinesis:ListShards", "kinesis:GetRecords"))
    code, out, err = check(aws, no_iterator, monkeypatch, capsys, "--kinesis-stream", KINESIS)
    assert 3 == code
    assert "verified      kinesis:ListShards" in out
    assert "denied        kinesis:GetShardIterator" in out
    assert "GetShardIterator on Kinesis stream 'app-clicks' was denied" in err
    assert "GetRecords" not in err.split("(the importer needs")[0]
    writer = aws.iam_user("writer", policy("firehose:PutRecord"))
    code, out, err = check(aws, writer, monkeypatch, capsys, "--firehose-stream", STREAM)
    assert 3 == code
    assert "denied        firehose:DescribeDeliveryStream" in out
    assert "allow 'firehose:DescribeDeliveryStream'" in err


def test_forward_command_with_the_template_policy(
    aws: LocalAWS,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Any,
    ios: dict[str, Any],
) -> None:
    """`streambridge forward` under mParticle's template policy delivers everything, exit 0."""
    aws.create_delivery_stream(STREAM)
    user = aws.iam_user("mparticle", MPARTICLE)
    batches = tmp_path / "in.jsonl"
    batches.write_text(json.dumps(ios) + "\n", encoding="utf-8")
    for name, value in aws.environment(user).items():
        monkeypatch.setenv(name, value)
    with aws.enforcing_iam():
        code = main(["forward", "--stream", STREAM, str(batches)])
    out, err = capsys.readouterr()
    assert 0 == code, err
    assert "sent 1 record(s)" in out
    assert "PutRecordBatch is denied" in err
    assert 1 == len(aws.delivered(STREAM))


class _BareForbidden(Fault):
    """An HTTP 403 with an empty body, as a proxy in front of AWS may answer."""

    def respond(self, injector: FaultInjector, operation: str, request: Any) -> AWSResponse:
        """403, no body."""
        return AWSResponse(request.url, 403, HTTPHeaders.from_dict({}), Body(b""))


def test_a_403_without_an_error_body_is_access_denied(aws: LocalAWS, ios: dict[str, Any]) -> None:
    """No JSON, no XML: still an AccessDeniedError with the permission to grant."""
    aws.create_delivery_stream(STREAM)
    client = aws.client("firehose")
    forwarder = FirehoseForwarder(client, PER_EVENT, put_mode="batch")
    with FaultInjector(client) as faults:
        faults.add("PutRecordBatch", _BareForbidden())
        with pytest.raises(AccessDeniedError) as info:
            forwarder.forward(ios)
    assert "AccessDenied" == info.value.error_code
    assert "allow 'firehose:PutRecordBatch'" in str(info.value)
    assert "HTTP 403 without an AWS error" in str(info.value)
