"""Issue 22, part 3: roles across accounts, with an External ID, refreshed before they expire.

Through moto's STS and its IAM enforcement, which evaluates the role's trust policy and its
``sts:ExternalId`` condition: a user who may only assume a role reaches the stream as that
role, is refused without it, and is refused a wrong External ID with a message that says what
the trust policy needs. moto records the role and External ID of each assumption. Credentials
that last 15 minutes are refreshed before each use (botocore refreshes 15 minutes ahead):
each refresh is an assumption moto records.
"""

from __future__ import annotations

import json
import os
import urllib.request
from typing import Any

import attrs
import pytest

from streambridge import (
    AccessDeniedError,
    ConfigurationError,
    FirehoseForwarder,
    ForwarderSettings,
    ImporterSettings,
    KinesisImporter,
)
from streambridge._aws import build_client
from streambridge._roles import AssumedRole
from streambridge.cli import main
from streambridge.iam import trust_policy
from streambridge.testing import LocalAWS

pytestmark = pytest.mark.integration

ROLE = "arn:aws:iam::123456789012:role/stream-writer"
EXTERNAL_ID = "mparticle-7f3a"
ONLY_ASSUME = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}],
}
STREAMS = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": ["firehose:*", "kinesis:*"], "Resource": "*"}],
}


def assumed(aws: LocalAWS) -> list[tuple[str, str | None]]:
    """(role, External ID) of every assumption moto saw."""
    url = f"{aws.endpoint_url}/moto-api/data.json"
    with urllib.request.urlopen(url) as answer:  # noqa: S310 - loopback
        state: dict[str, Any] = json.loads(answer.read())
    return [(r["role_arn"], r["external_id"]) for r in state["sts"]["AssumedRole"]]


PARTNER = "arn:aws:iam::123456789012:user/partner"


def as_role(aws: LocalAWS, service: str, role: AssumedRole) -> Any:
    """A client of the local AWS acting as ``role`` (assumed with the test keys)."""
    return build_client(
        service,
        region=aws.region,
        access_key_id="testing",
        secret_access_key="testing",
        endpoint_url=aws.endpoint_url,
        role=role,
    )


def writer_role(aws: LocalAWS) -> None:
    """The role in the "other" account: trusted by the partner with the External ID."""
    iam = aws.client("iam")
    trust = trust_policy(PARTNER, external_id=EXTERNAL_ID)
    iam.create_role(RoleName="stream-writer", AssumeRolePolicyDocument=json.dumps(trust))
    iam.put_role_policy(
        RoleName="stream-writer", PolicyName="streams", PolicyDocument=json.dumps(STREAMS)
    )


def test_a_user_who_may_only_assume_the_role_forwards_as_the_role(aws: LocalAWS) -> None:
    """Under IAM enforcement: its own keys are refused; through the role, records go."""
    aws.create_delivery_stream("events")
    writer_role(aws)
    user = aws.iam_user("partner", ONLY_ASSUME)
    batch = {"events": [{"event_type": "custom_event", "data": {"n": 1}}]}
    with aws.enforcing_iam():
        plain = ForwarderSettings(
            delivery_stream_name="events",
            access_key_id=user.access_key_id,
            secret_access_key=user.secret_access_key,
        )
        alone = FirehoseForwarder.from_settings(plain, endpoint_url=aws.endpoint_url)
        with pytest.raises(AccessDeniedError):
            alone.forward(batch)
        settings = attrs.evolve(plain, role_arn=ROLE, external_id=EXTERNAL_ID)
        forwarder = FirehoseForwarder.from_settings(settings, endpoint_url=aws.endpoint_url)
        assert forwarder.forward(batch).sent == 1
        wrong = attrs.evolve(settings, external_id="guessed")
        with pytest.raises(AccessDeniedError) as info:
            FirehoseForwarder.from_settings(wrong, endpoint_url=aws.endpoint_url)
    assert (ROLE, EXTERNAL_ID) in assumed(aws)
    assert EXTERNAL_ID not in repr(settings)
    message = str(info.value)
    assert f"cannot assume role {ROLE} (AccessDenied" in message
    assert "sts:ExternalId equal to the External ID given" in message
    assert "guessed" not in message


def test_the_importer_reads_as_the_role_and_credentials_are_refreshed(aws: LocalAWS) -> None:
    """15-minute credentials are assumed again before use: every call stays signed."""
    aws.create_stream("clicks", shards=1)
    aws.put_records("clicks", [{"name": "a"}, {"name": "b"}])
    writer_role(aws)
    role = AssumedRole(ROLE, EXTERNAL_ID, "importer", duration=900)
    client = as_role(aws, "kinesis", role)
    before = len(assumed(aws))
    settings = ImporterSettings(
        stream_name="clicks", event_key="name", start_position="TRIM_HORIZON"
    )
    events: list[Any] = []
    totals = KinesisImporter(client, settings, sink=events.extend).run(until_caught_up=True)
    assert 2 == totals.events == len(events)
    identity = as_role(aws, "sts", role).get_caller_identity()
    assert ":assumed-role/stream-writer/importer" in identity["Arn"]
    assert len(assumed(aws)) - before >= 3  # fetched at once, then again before calls


def test_a_role_is_checked_before_any_call() -> None:
    """A name that is no role ARN, an External ID without a role: said at once."""
    with pytest.raises(ConfigurationError, match="IAM role ARN"):
        AssumedRole("stream-writer")
    with pytest.raises(ConfigurationError, match=r"900\.\.43200"):
        AssumedRole(ROLE, duration=60)
    with pytest.raises(ConfigurationError, match="without a role ARN"):
        FirehoseForwarder.from_settings(
            ForwarderSettings(delivery_stream_name="events", external_id="x"),
            endpoint_url="http://127.0.0.1:9",
        )


def test_check_says_the_identity_and_the_trust_policy_to_create(
    aws: LocalAWS, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``check --role-arn --external-id``: acting as the role; its trust policy printed."""
    aws.create_delivery_stream("events")
    writer_role(aws)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("STREAMBRIDGE_EXTERNAL_ID", EXTERNAL_ID)
    argv = ["check", "--firehose-stream", "events", "--role-arn", ROLE]
    argv += ["--role-session-name", "chk", "--endpoint-url", aws.endpoint_url]
    code = main([*argv, "--region", aws.region])
    out = capsys.readouterr().out
    assert 0 == code
    assert "identity: arn:aws:sts::123456789012:assumed-role/stream-writer/chk" in out
    assert f"the trust policy {ROLE} needs (in its account):" in out
    assert f'"sts:ExternalId": "{EXTERNAL_ID}"' in out
    assert (ROLE, EXTERNAL_ID) in assumed(aws)
    assert os.environ["STREAMBRIDGE_EXTERNAL_ID"] == EXTERNAL_ID


def test_the_forwarder_lambda_takes_the_role_from_its_environment(
    aws: LocalAWS, monkeypatch: pytest.MonkeyPatch
) -> None:
    """STREAMBRIDGE_ROLE_ARN / _EXTERNAL_ID: the zero-code handler's Firehose client assumes it."""
    from streambridge.forwarder.aws_lambda import handler_from_environment  # noqa: PLC0415

    aws.create_delivery_stream("hook")
    writer_role(aws)
    env = {
        "STREAMBRIDGE_DELIVERY_STREAM": "hook",
        "STREAMBRIDGE_NO_AUTH": "true",
        "STREAMBRIDGE_ROLE_ARN": ROLE,
        "STREAMBRIDGE_EXTERNAL_ID": "lambda-ext",
        "STREAMBRIDGE_METRICS": "off",
    }
    for name, value in aws.environment().items():  # the Lambda runtime's, here the local AWS
        monkeypatch.setenv(name, value)
    handler = handler_from_environment(env)
    answer = handler(
        {
            "version": "2.0",
            "rawPath": "/",
            "headers": {},
            "requestContext": {"http": {"method": "POST"}},
            "body": json.dumps({"events": [{"event_type": "custom_event", "data": {}}]}),
        }
    )
    assert 200 == answer["statusCode"], answer
    assert (ROLE, "lambda-ext") in assumed(aws)
