"""``streambridge check``: verify streams and credentials; print the IAM policy they need."""

from __future__ import annotations

import argparse
import json
from typing import Any

from botocore.exceptions import ClientError

from streambridge.cli._common import EXIT_OK, UsageError, aws_client, aws_options
from streambridge.forwarder import ForwarderSettings
from streambridge.forwarder.forwarder import FirehoseForwarder
from streambridge.iam import forwarder_policy, importer_policy

__all__ = ["add_parser"]


def add_parser(commands: Any) -> None:
    """Add the ``check`` command to ``commands`` (argparse sub-parsers)."""
    check = commands.add_parser(
        "check", help="verify streams and credentials; print the IAM policy the options need"
    )
    check.add_argument("--firehose-stream", help="a Firehose delivery stream to check")
    check.add_argument("--kinesis-stream", help="a Kinesis Data Stream to check (for import)")
    check.add_argument("--put-mode", choices=["batch", "single"], default="batch")
    aws_options(check)
    check.set_defaults(run=_check)


def _check(args: argparse.Namespace) -> int:
    if not args.firehose_stream and not args.kinesis_stream:
        raise UsageError("name something to check: --firehose-stream and/or --kinesis-stream")
    if args.firehose_stream:
        client = aws_client(args, "firehose")
        settings = ForwarderSettings(delivery_stream_name=args.firehose_stream)
        info = FirehoseForwarder(client, settings, put_mode=args.put_mode).check()
        print(
            f"firehose: delivery stream {info.name!r} is {info.status}, source {info.stream_type}"
        )
        print(json.dumps(forwarder_policy(info.arn, put_mode=args.put_mode), indent=2))
    if args.kinesis_stream:
        client = aws_client(args, "kinesis")
        arn = _check_kinesis(client, args.kinesis_stream)
        print(json.dumps(importer_policy(arn), indent=2))
    return EXIT_OK


def _check_kinesis(client: Any, stream: str) -> str:
    """ListShards, GetShardIterator and GetRecords on one shard; return the stream's ARN."""
    try:
        shards = client.list_shards(StreamName=stream)["Shards"]
        if not shards:
            raise UsageError(f"Kinesis stream {stream!r} has no shards")
        iterator = client.get_shard_iterator(
            StreamName=stream, ShardId=shards[0]["ShardId"], ShardIteratorType="LATEST"
        )["ShardIterator"]
        client.get_records(ShardIterator=iterator, Limit=1)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        operation = exc.operation_name
        if code == "ResourceNotFoundException":
            raise UsageError(f"Kinesis stream {stream!r} was not found ({exc})") from None
        raise UsageError(
            f"{operation} on Kinesis stream {stream!r} failed ({code}): the importer needs "
            f"kinesis:ListShards, kinesis:GetShardIterator and kinesis:GetRecords"
        ) from None
    region = client.meta.region_name
    print(f"kinesis: stream {stream!r} readable: {len(shards)} shard(s) listed, records readable")
    return f"arn:aws:kinesis:{region}:{{account-id}}:stream/{stream}"
