"""``streambridge check``: verify streams and credentials; print the IAM policy they need.

Each permission is reported as ``verified`` (a call that needs it succeeded), ``denied`` (AWS
refused it), or ``not verified`` (checking it would write a record). The exit code is 3 when AWS
refused something the command needs (a missing stream, a denied permission), as for every
command, and 1 when a call failed in a way that may pass on a second try (throttling, a
connection that failed).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from collections.abc import Callable
from typing import Any

from streambridge._aws import CallError, attempt
from streambridge.cli._common import (
    EXIT_AWS,
    EXIT_FAILED,
    EXIT_OK,
    FailedError,
    UsageError,
    aws_client,
    aws_options,
    say,
)
from streambridge.errors import AccessDeniedError, DeliveryError
from streambridge.forwarder import ForwarderSettings
from streambridge.forwarder.forwarder import FirehoseForwarder
from streambridge.iam import forwarder_policy, importer_policy, trust_policy
from streambridge.importer.answers import records_page, shard_iterator
from streambridge.importer.calls import describe_shards, list_shards, refusal_error
from streambridge.retry import PERMISSION_DENIED_CODES

__all__ = ["add_parser"]

VERIFIED, DENIED, NOT_VERIFIED = "verified", "denied", "not verified"
Policy = dict[str, Any]


def add_parser(commands: Any) -> None:
    """Add the ``check`` command to ``commands`` (argparse sub-parsers)."""
    check = commands.add_parser(
        "check", help="verify streams and credentials; print the IAM policy the options need"
    )
    check.add_argument("--firehose-stream", help="a Firehose delivery stream to check")
    check.add_argument("--kinesis-stream", help="a Kinesis Data Stream to check (for import)")
    check.add_argument("--put-mode", choices=["auto", "batch", "single"], default="auto")
    aws_options(check)
    check.set_defaults(run=_check)


def _check(args: argparse.Namespace) -> int:
    if not args.firehose_stream and not args.kinesis_stream:
        raise UsageError("name something to check: --firehose-stream and/or --kinesis-stream")
    code, policies = EXIT_OK, []
    _identity(args)
    if args.firehose_stream:
        firehose, policy = _check_firehose(aws_client(args, "firehose"), args)
        code = max(code, firehose)
        policies += [policy] if policy else []
    if args.kinesis_stream:
        client = aws_client(args, "kinesis")
        kinesis, policy = _check_kinesis(client, args.kinesis_stream, lambda: _account(args))
        code = max(code, kinesis)
        policies += [policy] if policy else []
    if policies:  # one document to paste, with the statements of every stream checked
        print("the IAM policy these options need:")
        statements = [statement for policy in policies for statement in policy["Statement"]]
        print(json.dumps({"Version": "2012-10-17", "Statement": statements}, indent=2))
    return code


def _error(error: object) -> None:
    say(f"error: {error}", level=logging.ERROR)


def _report(status: str, permission: str, note: str = "") -> None:
    print(f"  {status:<13} {permission}{f'  ({note})' if note else ''}")


def _check_firehose(client: Any, args: argparse.Namespace) -> tuple[int, Policy | None]:
    settings = ForwarderSettings(delivery_stream_name=args.firehose_stream)
    try:
        info = FirehoseForwarder(client, settings, put_mode=args.put_mode).check()
    except DeliveryError as exc:
        denied = exc.error_code in PERMISSION_DENIED_CODES
        _report(DENIED if denied else NOT_VERIFIED, "firehose:DescribeDeliveryStream")
        _error(exc)
        return EXIT_AWS, None
    print(f"firehose: delivery stream {info.name!r} is {info.status}, source {info.stream_type}")
    _report(VERIFIED, "firehose:DescribeDeliveryStream")
    if info.appends_delimiter:
        print(
            "  the delivery stream appends a delimiter to each record (AppendDelimiterToRecord):"
            " forward with --no-newline, or S3 objects will hold empty lines"
        )
    else:
        print("  the delivery stream appends no delimiter: forward ends each record with a newline")
    writes = "checking it would write a record"
    if args.put_mode != "single":
        note = writes
        if args.put_mode == "auto":
            note += "; without it, put mode 'auto' sends one PutRecord per record"
        _report(NOT_VERIFIED, "firehose:PutRecordBatch", note)
    if args.put_mode != "batch":
        _report(NOT_VERIFIED, "firehose:PutRecord", writes)
    return EXIT_OK, forwarder_policy(info.arn, put_mode=args.put_mode)


def _identity(args: argparse.Namespace) -> None:
    """Say who the calls are made as (the role, when one is assumed), and its trust policy."""
    try:
        arn = str(aws_client(args, "sts").get_caller_identity()["Arn"])
    except UsageError:
        raise
    except AccessDeniedError as exc:  # the role could not be assumed: said, with what to do
        raise FailedError(str(exc), EXIT_AWS) from None
    except Exception as exc:  # noqa: BLE001 - no identity to say: the checks say the rest
        print(f"identity: unknown (sts:GetCallerIdentity failed: {exc})")
        return
    print(f"identity: {arn}")
    if args.role_arn:
        source = argparse.Namespace(**{**vars(args), "role_arn": None, "external_id": None})
        try:
            caller = str(aws_client(source, "sts").get_caller_identity()["Arn"])
        except Exception:  # noqa: BLE001 - an account placeholder instead
            caller = "arn:aws:iam::{your-account-id}:root"
        external_id = args.external_id or os.environ.get("STREAMBRIDGE_EXTERNAL_ID")
        print(f"the trust policy {args.role_arn} needs (in its account):")
        print(json.dumps(trust_policy(_principal(caller), external_id=external_id), indent=2))


def _principal(arn: str) -> str:
    """The principal to trust for a caller: an assumed role's role, else the ARN itself."""
    if ":assumed-role/" in arn:  # arn:aws:sts::<account>:assumed-role/<role>/<session>
        partition, account = arn.split(":")[1], arn.split(":")[4]
        role = arn.split(":assumed-role/", 1)[1].split("/", maxsplit=1)[0]
        return f"arn:{partition}:iam::{account}:role/{role}"
    return arn


def _account(args: argparse.Namespace) -> str:
    """The credentials' account id (STS GetCallerIdentity), or ``{account-id}`` and why not."""
    try:
        return str(aws_client(args, "sts").get_caller_identity()["Account"])
    except Exception as exc:  # noqa: BLE001 - any refusal: the placeholder, said
        print(
            f"  (the account id is unknown — sts:GetCallerIdentity failed: {exc}; replace "
            f"{{account-id}} below)"
        )
        return "{account-id}"


def _check_kinesis(
    client: Any, stream: str, account: Callable[[], str]
) -> tuple[int, Policy | None]:
    """List the shards, get an iterator and read one record at LATEST, reporting each step."""
    print(f"kinesis: stream {stream!r}")
    refusal: CallError | None = None
    shards = list_shards(client, stream)
    if isinstance(shards, CallError) and shards.denied:
        _report(DENIED, "kinesis:ListShards", "the importer lists shards with DescribeStream")
        shards = describe_shards(client, stream)
        steps: list[tuple[str, object]] = [("kinesis:DescribeStream", shards)]
    else:
        steps = [("kinesis:ListShards", shards)]
    if not isinstance(shards, CallError) and shards:
        iterator = attempt(
            client.get_shard_iterator,
            "GetShardIterator",
            shard_iterator,
            StreamName=stream,
            ShardId=shards[0]["ShardId"],
            ShardIteratorType="LATEST",
        )
        steps.append(("kinesis:GetShardIterator", iterator))
        if not isinstance(iterator, CallError):
            read = attempt(
                client.get_records, "GetRecords", records_page, ShardIterator=iterator, Limit=1
            )
            steps.append(("kinesis:GetRecords", read))
    for permission, outcome in steps:
        if isinstance(outcome, CallError):
            _report(DENIED if outcome.denied else NOT_VERIFIED, permission, outcome.code)
            refusal = refusal or outcome
        else:
            _report(VERIFIED, permission)
    if refusal is not None and refusal.retryable:  # throttled, unreachable…: no verdict
        what = f"{refusal.operation} on Kinesis stream {stream!r}"
        _error(f"{what} failed ({refusal.message}): try again")
        return EXIT_FAILED, None
    if refusal is not None:
        _error(refusal_error(refusal, stream, client.meta.region_name))
        return EXIT_AWS, None
    if isinstance(shards, CallError) or not shards:
        _error(f"Kinesis stream {stream!r} has no shards")
        return EXIT_AWS, None
    region = client.meta.region_name
    print(f"kinesis: stream {stream!r} readable: {len(shards)} shard(s) listed, records readable")
    arn = f"arn:aws:kinesis:{region}:{account()}:stream/{stream}"
    return EXIT_OK, importer_policy(arn)
