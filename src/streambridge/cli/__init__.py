"""The ``streambridge`` command: forward, serve, import, check, kcl, kcl-daemon, local, demo.

Every command honours the standard AWS environment (profiles, ``AWS_REGION``,
``AWS_ENDPOINT_URL_FIREHOSE`` / ``_KINESIS``…) plus ``--profile``, ``--region`` and
``--endpoint-url``. Bad arguments and bad input get one line on stderr and a non-zero exit,
never a traceback. Exit codes: 0 all good, 1 something failed, was rejected or was not
delivered, 2 bad usage or input, 3 AWS refused (missing stream, access denied…), 4 the
destination refused (PostHog: a bad API key; a closed output pipe), 130 / 143 stopped by
SIGINT / SIGTERM before the input was read to its end (``forward``; a tailing ``import`` stops
on either with 0 when everything read was delivered).
SIGTERM stops as cleanly as Ctrl-C: what was read is delivered (or counted as not delivered),
checkpoints move only past what the destination accepted.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence

from botocore.exceptions import BotoCoreError, ClientError

from streambridge import __version__
from streambridge.cli import check, forward, importing, kcl, kcl_daemon, local, samples, serve
from streambridge.cli._common import (
    EXIT_AWS,
    EXIT_DEAD_LETTER,
    EXIT_DESTINATION,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    FailedError,
    UsageError,
    log_to_stderr,
    missing_local_extra,
    say,
)
from streambridge.errors import (
    ConfigurationError,
    DeadLetterError,
    DeliveryError,
    FatalSinkError,
    StreambridgeError,
)

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    args = _parser().parse_args(argv)
    if args.command not in ("demo", "local"):
        log_to_stderr(args.log_format)
    try:
        return int(args.run(args))
    except (UsageError, ConfigurationError) as exc:
        message, code = str(exc), EXIT_USAGE
    except FailedError as exc:
        message, code = str(exc), exc.code
    except FatalSinkError as exc:
        message, code = str(exc), EXIT_DESTINATION
    except DeadLetterError as exc:
        message, code = str(exc), EXIT_DEAD_LETTER
    except DeliveryError as exc:
        undelivered = f" ({len(exc.undelivered)} records not delivered)" if exc.undelivered else ""
        message, code = f"{exc}{undelivered}", EXIT_AWS
    except StreambridgeError as exc:
        message, code = str(exc), EXIT_FAILED
    except (BotoCoreError, ClientError) as exc:
        message, code = f"AWS: {exc}", EXIT_AWS
    except KeyboardInterrupt:
        message, code = "interrupted", EXIT_INTERRUPTED
    say(f"error: {message}", level=logging.ERROR, exit_code=code)
    return code


#: One example of each command, ending its --help (docs/cli.md has more).
EXAMPLES = {
    "forward": "streambridge forward --stream mparticle-events --dead-letter failed.jsonl "
    "batches.jsonl",
    "serve": "STREAMBRIDGE_AUTHORIZATION='Basic …' streambridge serve --stream mparticle-events "
    "--port 8080",
    "import": "POSTHOG_API_KEY=phc_… streambridge import --stream app-clicks --event-key "
    "properties.eventName --posthog-host https://eu.i.posthog.com --checkpoints state.db",
    "check": "streambridge check --firehose-stream mparticle-events --kinesis-stream app-clicks",
    "kcl": "streambridge kcl --stream app-clicks --event-key properties.eventName "
    "--posthog-host https://eu.i.posthog.com  (run by the KCL daemon: see kcl-daemon)",
    "kcl-daemon": "streambridge kcl-daemon --application-name clicks-to-posthog --properties "
    "kcl.properties -- --stream app-clicks --event-key properties.eventName --posthog-host "
    "https://eu.i.posthog.com",
    "local": "streambridge local --firehose-stream mparticle-events --kinesis-stream app-clicks",
    "demo": "streambridge demo",
    "samples": "streambridge samples --output batches.jsonl",
}

#: The exit codes, ending every command's --help.
EXIT_CODES = """exit codes:
  0  done: everything delivered or imported
  1  something failed, was rejected or unreadable (the last line says how many)
  2  bad usage or settings, an unreadable input or checkpoints file
  3  AWS refused (missing stream, access denied, no credentials) or never answered
  4  the destination refused (PostHog rejected the key)
  5  a dead letter could not be written
  130, 143  forward stopped by SIGINT / SIGTERM before the end of its input"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="streambridge",
        description="Move analytics events between apps and AWS Kinesis.",
    )
    parser.add_argument("--version", action="version", version=f"streambridge {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    forward.add_parser(commands)
    serve.add_parser(commands)
    importing.add_parser(commands)
    check.add_parser(commands)
    kcl.add_parser(commands)
    kcl_daemon.add_parser(commands)
    local.add_parser(commands)
    samples.add_parser(commands)
    demo = commands.add_parser(
        "demo", help="both halves on an embedded local AWS, with the sample batches (no account)"
    )
    demo.set_defaults(run=_demo)
    for name, command in commands.choices.items():
        command.formatter_class = argparse.RawDescriptionHelpFormatter
        command.epilog = f"example:\n  {EXAMPLES[name]}\n\n{EXIT_CODES}"
        command.add_argument(
            "--log-format",
            choices=("text", "json"),
            default="text",
            help="json: warnings, errors and the summary on stderr as one JSON object a line, "
            "with their fields (stream, shard, sequence_number, error_code…)",
        )
    return parser


def _demo(args: argparse.Namespace) -> int:
    try:
        from streambridge._demo import run_demo  # noqa: PLC0415

        return run_demo()
    except ModuleNotFoundError as exc:
        raise missing_local_extra(exc, "the demo") from None
