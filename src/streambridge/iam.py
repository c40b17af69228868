"""Least-privilege IAM policies for each half and mode (pure; printed by ``streambridge check``)."""

from __future__ import annotations

from typing import Any, Literal

__all__ = [
    "dead_letter_policy",
    "forwarder_policy",
    "importer_policy",
    "kcl_policy",
    "lambda_policy",
    "s3_source_policy",
    "trust_policy",
]


def _policy(actions: list[str], resource: str) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": actions, "Resource": [resource]}],
    }


def forwarder_policy(
    stream_arn: str, *, put_mode: Literal["auto", "batch", "single"] = "auto", check: bool = True
) -> dict[str, Any]:
    """The policy :class:`FirehoseForwarder` needs on one delivery stream.

    Args:
        stream_arn: ``arn:aws:firehose:{region}:{account}:deliverystream/{name}``.
        put_mode: ``"auto"`` and ``"batch"`` batch with ``firehose:PutRecordBatch`` (with
            ``"auto"``, ``firehose:PutRecord`` alone — mParticle's template policy — works too,
            one call per record); ``"single"`` needs only ``firehose:PutRecord``.
        check: Include ``firehose:DescribeDeliveryStream`` for :meth:`FirehoseForwarder.check`.
    """
    actions = ["firehose:DescribeDeliveryStream"] if check else []
    actions.append("firehose:PutRecord" if put_mode == "single" else "firehose:PutRecordBatch")
    return _policy(actions, stream_arn)


def importer_policy(stream_arn: str) -> dict[str, Any]:
    """The policy :class:`KinesisImporter` needs on one stream (``…:stream/{name}``).

    ``kinesis:DescribeStream`` in place of ``kinesis:ListShards`` (PostHog's documented policy)
    works too: the importer then lists shards with ``DescribeStream``, at its lower rate limit.
    """
    return _policy(
        ["kinesis:ListShards", "kinesis:GetShardIterator", "kinesis:GetRecords"], stream_arn
    )


def _statement(actions: list[str], resources: list[str]) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": actions, "Resource": resources}


def _region_and_account(stream_arn: str) -> tuple[str, str]:
    """``(region, account)`` of ``arn:aws:kinesis:{region}:{account}:stream/{name}``."""
    parts = stream_arn.split(":")
    if len(parts) < 6 or parts[2] != "kinesis" or not parts[5].startswith("stream/"):  # noqa: PLR2004
        msg = f"not a Kinesis stream ARN: {stream_arn!r}"
        raise ValueError(msg)
    return parts[3], parts[4]


def lambda_policy(stream_arn: str) -> dict[str, Any]:
    """The execution role's policy for the Lambda handler on one stream.

    What the event source mapping reads the stream with (AWS's managed
    ``AWSLambdaKinesisExecutionRole``, scoped to the stream), plus CloudWatch Logs for the
    function's own log. The PostHog key is in the function's environment, not in IAM.
    """
    region, account = _region_and_account(stream_arn)
    kinesis = ["kinesis:DescribeStream", "kinesis:DescribeStreamSummary", "kinesis:GetRecords"]
    kinesis += ["kinesis:GetShardIterator", "kinesis:ListShards"]
    logs = ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"]
    return {
        "Version": "2012-10-17",
        "Statement": [
            _statement(kinesis, [stream_arn]),
            _statement(["kinesis:ListStreams"], ["*"]),  # not scoped to a stream by AWS
            _statement(logs, [f"arn:aws:logs:{region}:{account}:log-group:/aws/lambda/*"]),
        ],
    }


def kcl_policy(
    stream_arn: str, application_name: str, *, enhanced_fan_out: bool = False
) -> dict[str, Any]:
    """The policy a KCL worker running ``streambridge kcl`` needs (AWS's documented minimum).

    Args:
        stream_arn: The stream the daemon reads (``streamName`` in its properties).
        application_name: The daemon's ``applicationName``: its lease table's name, and the
            prefix of the worker metrics and coordinator state tables KCL 3 creates.
        enhanced_fan_out: Add what ``SubscribeToShard`` consumers need.
    """
    region, account = _region_and_account(stream_arn)
    table = f"arn:aws:dynamodb:{region}:{account}:table/{application_name}"
    kinesis = ["kinesis:DescribeStream", "kinesis:DescribeStreamSummary"]
    kinesis += ["kinesis:RegisterStreamConsumer", "kinesis:GetRecords"]
    kinesis += ["kinesis:GetShardIterator", "kinesis:ListShards"]
    dynamodb = ["dynamodb:CreateTable", "dynamodb:DescribeTable", "dynamodb:UpdateTable"]
    dynamodb += ["dynamodb:Scan", "dynamodb:GetItem", "dynamodb:PutItem"]
    dynamodb += ["dynamodb:UpdateItem", "dynamodb:DeleteItem"]
    tables = [table, f"{table}-WorkerMetricStats", f"{table}-CoordinatorState"]
    statements = [
        _statement(kinesis, [stream_arn]),
        _statement(dynamodb, tables),
        _statement(["dynamodb:Query"], [f"{table}/index/*"]),
        _statement(["cloudwatch:PutMetricData"], ["*"]),  # not scoped to a resource by AWS
    ]
    if enhanced_fan_out:
        fan_out = ["kinesis:SubscribeToShard", "kinesis:DescribeStreamConsumer"]
        statements.append(_statement(fan_out, [f"{stream_arn}/consumer/*"]))
    return {"Version": "2012-10-17", "Statement": statements}


def dead_letter_policy(target: str) -> dict[str, Any]:
    """The policy for writing dead letters to ``target``: an S3 prefix or an SQS queue URL.

    ``s3://bucket/prefix`` needs ``s3:PutObject`` on the prefix; a queue URL
    (``https://sqs.{region}.amazonaws.com/{account}/{name}``) needs ``sqs:SendMessage`` on the
    queue (``SendMessageBatch`` is authorised by it). Add it to the role that runs the
    command, the function or the workers.

    Raises:
        ValueError: ``target`` is neither.
    """
    if target.startswith("s3://"):
        bucket, _, prefix = target.removeprefix("s3://").partition("/")
        if bucket:
            return _policy(["s3:PutObject"], f"arn:aws:s3:::{bucket}/{prefix}*")
    parts = target.split("/")
    host = parts[2] if len(parts) == 5 and target.startswith("https://") else ""  # noqa: PLR2004
    if host.startswith("sqs.") and parts[3].isdigit():
        region = host.split(".")[1]
        return _policy(["sqs:SendMessage"], f"arn:aws:sqs:{region}:{parts[3]}:{parts[4]}")
    msg = f"not an S3 prefix (s3://bucket/prefix) or an SQS queue URL: {target!r}"
    raise ValueError(msg)


def s3_source_policy(url: str) -> dict[str, Any]:
    """The policy ``streambridge forward s3://bucket/prefix/`` needs to read mParticle's files.

    ``s3:ListBucket`` on the bucket, limited to the prefix, and ``s3:GetObject`` on the
    objects under it; objects encrypted with a KMS key also need ``kms:Decrypt`` on that key.

    Raises:
        ValueError: ``url`` is not ``s3://bucket/prefix``.
    """
    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    if not url.startswith("s3://") or not bucket:
        msg = f"not an S3 location (s3://bucket/prefix): {url!r}"
        raise ValueError(msg)
    listing = _statement(["s3:ListBucket"], [f"arn:aws:s3:::{bucket}"])
    if prefix:
        listing["Condition"] = {"StringLike": {"s3:prefix": [f"{prefix}*"]}}
    reading = _statement(["s3:GetObject"], [f"arn:aws:s3:::{bucket}/{prefix}*"])
    return {"Version": "2012-10-17", "Statement": [listing, reading]}


def trust_policy(principal_arn: str, *, external_id: str | None = None) -> dict[str, Any]:
    """The trust policy of a role that ``principal_arn`` assumes from another account.

    Create the role in the account that owns the stream, with this trust policy and the
    half's policy (:func:`forwarder_policy`, :func:`importer_policy`); give the role's ARN as
    ``role_arn`` (``--role-arn``). With ``external_id``, the role can be assumed only by a
    caller that gives it (``sts:ExternalId``): what AWS advises when a third party assumes it.

    Args:
        principal_arn: Who assumes it: an account (``arn:aws:iam::<account>:root``), a role or
            a user ARN.
        external_id: The External ID the caller must give.
    """
    statement: dict[str, Any] = {
        "Effect": "Allow",
        "Principal": {"AWS": principal_arn},
        "Action": "sts:AssumeRole",
    }
    if external_id:
        statement["Condition"] = {"StringEquals": {"sts:ExternalId": external_id}}
    return {"Version": "2012-10-17", "Statement": [statement]}
