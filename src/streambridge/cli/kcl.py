"""``streambridge kcl``: the child process of the KCL's MultiLangDaemon (its executableName).

The daemon starts one per shard and talks to it in JSON lines on stdin and stdout, so the
events go to PostHog or to a file (``--output FILE``), never to stdout; logs go to stderr,
which the daemon copies into its own log. Needs amazon-kclpy (the ``kcl`` extra).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from streambridge.cli._common import EXIT_OK, UsageError, open_dead_letters
from streambridge.cli.importing import (
    event_sink,
    importer_settings,
    settings_options,
    sink_options,
)
from streambridge.importer.kcl import KclRecordProcessor

__all__ = ["add_parser"]


def add_parser(commands: Any) -> None:
    """Add the ``kcl`` command to ``commands`` (argparse sub-parsers)."""
    kcl = commands.add_parser(
        "kcl",
        help="a record processor for the KCL's MultiLangDaemon (name it as executableName)",
        description="Read the MultiLangDaemon's messages on stdin, import each batch of "
        "records into PostHog (or --output FILE), and checkpoint only past what was delivered. "
        "--stream must be the daemon's streamName: it is part of every event's uuid.",
    )
    settings_options(kcl)
    sink_options(
        kcl, output_help="write events as JSON lines to this file (stdout is the daemon's)"
    )
    kcl.add_argument(
        "--sink-patience",
        type=float,
        default=300.0,
        help="seconds a failing sink is retried before the process exits (default 300)",
    )
    kcl.set_defaults(
        run=_kcl,
        region=None,
        profile=None,
        endpoint_url=None,
        retry_budget=None,
        role_arn=None,
        external_id=None,
        role_session_name=None,
    )


def _kcl(args: argparse.Namespace) -> int:
    try:
        from amazon_kclpy import kcl  # noqa: PLC0415 - the kcl extra
    except ImportError:
        raise UsageError(
            "this command needs amazon-kclpy: pip install 'streambridge[kcl]'"
        ) from None
    to_posthog = args.posthog_host or args.posthog_key or args.posthog_key_file
    if not to_posthog and args.output in ("-", "/dev/stdout"):
        raise UsageError(
            "stdout is the daemon's: pass --output FILE or --posthog-host/--posthog-key"
        )
    if args.sink_patience < 0:
        raise UsageError("--sink-patience must be 0 or more")
    settings = importer_settings(args)
    sink, close, _abandon = event_sink(args, patience=args.sink_patience)
    letters = open_dead_letters(args.dead_letter, args)
    processor = KclRecordProcessor(
        settings, sink, on_skip=letters, sink_patience=args.sink_patience
    )
    try:
        kcl.KCLProcess(processor, sys.stdin, sys.stdout, sys.stderr).run()
    finally:
        close()
        if letters is not None:
            letters.close()
    return EXIT_OK
