"""The IAM policies for the engines that hold leases themselves: Lambda and the KCL."""

from __future__ import annotations

import pytest

from streambridge.iam import dead_letter_policy, kcl_policy, lambda_policy

STREAM = "arn:aws:kinesis:eu-west-1:123456789012:stream/clicks"


def actions(policy: dict[str, object], resource: str) -> set[str]:
    """Every action the policy allows on ``resource``."""
    found: set[str] = set()
    for statement in policy["Statement"]:  # type: ignore[attr-defined]
        if resource in statement["Resource"]:
            found |= set(statement["Action"])
    return found


def test_lambda_policy_is_the_managed_kinesis_execution_role_scoped_to_the_stream() -> None:
    """What the event source mapping reads the stream with, on that stream only, plus logs."""
    policy = lambda_policy(STREAM)
    assert actions(policy, STREAM) == {
        "kinesis:DescribeStream",
        "kinesis:DescribeStreamSummary",
        "kinesis:GetRecords",
        "kinesis:GetShardIterator",
        "kinesis:ListShards",
    }
    assert actions(policy, "*") == {"kinesis:ListStreams"}
    logs = "arn:aws:logs:eu-west-1:123456789012:log-group:/aws/lambda/*"
    assert "logs:PutLogEvents" in actions(policy, logs)


def test_kcl_policy_covers_the_stream_the_lease_tables_and_metrics() -> None:
    """AWS's documented minimum for a KCL 3 consumer: stream, three tables, index, metrics."""
    policy = kcl_policy(STREAM, "clicks-to-posthog")
    table = "arn:aws:dynamodb:eu-west-1:123456789012:table/clicks-to-posthog"
    assert {"kinesis:GetRecords", "kinesis:ListShards"} <= actions(policy, STREAM)
    for name in (table, f"{table}-WorkerMetricStats", f"{table}-CoordinatorState"):
        assert {"dynamodb:CreateTable", "dynamodb:UpdateItem", "dynamodb:Scan"} <= actions(
            policy, name
        )
    assert actions(policy, f"{table}/index/*") == {"dynamodb:Query"}
    assert actions(policy, "*") == {"cloudwatch:PutMetricData"}
    assert actions(policy, f"{STREAM}/consumer/*") == set()
    fan_out = kcl_policy(STREAM, "clicks-to-posthog", enhanced_fan_out=True)
    assert "kinesis:SubscribeToShard" in actions(fan_out, f"{STREAM}/consumer/*")


def test_a_policy_needs_a_kinesis_stream_arn() -> None:
    """A delivery stream ARN or a bare name is refused, not turned into a wrong policy."""
    with pytest.raises(ValueError, match="not a Kinesis stream ARN"):
        kcl_policy("clicks", "app")
    with pytest.raises(ValueError, match="not a Kinesis stream ARN"):
        lambda_policy("arn:aws:firehose:eu-west-1:123456789012:deliverystream/x")


@pytest.mark.parametrize(
    ("target", "action", "resource"),
    [
        ("s3://dead", "s3:PutObject", "arn:aws:s3:::dead/*"),
        ("s3://dead/lambda/", "s3:PutObject", "arn:aws:s3:::dead/lambda/*"),
        (
            "https://sqs.us-east-2.amazonaws.com/123456789012/dead",
            "sqs:SendMessage",
            "arn:aws:sqs:us-east-2:123456789012:dead",
        ),
    ],
)
def test_dead_letter_policy_names_the_one_action_on_the_target(
    target: str, action: str, resource: str
) -> None:
    """S3: PutObject on the prefix; SQS: SendMessage on the queue's ARN."""
    (statement,) = dead_letter_policy(target)["Statement"]
    assert (statement["Action"], statement["Resource"]) == ([action], [resource])


@pytest.mark.parametrize("target", ["/tmp/dead.jsonl", "s3://", "https://example.com/x"])  # noqa: S108
def test_dead_letter_policy_refuses_what_is_no_remote_target(target: str) -> None:
    """A file, an empty bucket, a URL that is no queue: a ValueError saying what is expected."""
    with pytest.raises(ValueError, match="not an S3 prefix"):
        dead_letter_policy(target)
