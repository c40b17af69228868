"""``streambridge local``: an AWS on 127.0.0.1 for the other commands, until Ctrl-C.

moto's server (the ``local`` extra) with a Direct PUT delivery stream writing to an S3
bucket, and a Kinesis stream, created at start; it prints the ``export`` lines that point the
AWS environment (streambridge, the AWS CLI, any SDK) at it. Everything in it is gone when it
stops.
"""

from __future__ import annotations

import argparse
import sys
import threading
from typing import Any

from streambridge.cli._common import (
    EXIT_OK,
    UsageError,
    missing_local_extra,
    on_signals,
    restore_signals,
    say,
)

__all__ = ["add_parser"]


def add_parser(commands: Any) -> None:
    """Add the ``local`` command to ``commands`` (argparse sub-parsers)."""
    local = commands.add_parser(
        "local",
        help="run a local AWS (moto) with a delivery stream and a stream, until Ctrl-C",
    )
    local.add_argument("--firehose-stream", default="mparticle-events", help="(mparticle-events)")
    local.add_argument("--kinesis-stream", default="clicks", help="(clicks)")
    local.add_argument("--shards", type=int, default=1, help="the Kinesis stream's shards (1)")
    local.add_argument("--port", type=int, default=0, help="on 127.0.0.1 (default: a free one)")
    local.add_argument("--region", default="us-east-1", help="(us-east-1)")
    local.set_defaults(run=_local)


#: How the command waits for Ctrl-C (a test replaces it).
_stop_event = threading.Event


def _local(args: argparse.Namespace) -> int:
    if args.shards < 1:
        raise UsageError("--shards must be at least 1")
    from streambridge.testing import local_aws  # noqa: PLC0415

    stop = _stop_event()
    previous = on_signals(lambda _signum: stop.set())
    try:
        with local_aws(region=args.region, port=args.port) as aws:
            bucket = aws.create_delivery_stream(args.firehose_stream)
            aws.create_stream(args.kinesis_stream, shards=args.shards)
            print(f"# a local AWS on {aws.endpoint_url}; paste these lines into a shell:")
            for name, value in aws.environment().items():
                print(f"export {name}={value}")
            print(
                f"# delivery stream {args.firehose_stream!r} -> s3://{bucket}/"
                f"{args.firehose_stream}/; Kinesis stream {args.kinesis_stream!r} "
                f"({args.shards} shard(s)). Ctrl-C stops it, and everything in it is gone."
            )
            sys.stdout.flush()
            while not stop.wait(0.5):
                pass
    except ModuleNotFoundError as exc:
        raise missing_local_extra(exc, "`streambridge local`") from None
    except OSError as exc:
        raise UsageError(f"cannot serve on 127.0.0.1:{args.port}: {exc.strerror}") from None
    finally:
        restore_signals(previous)
    say("local AWS stopped")
    return EXIT_OK
