"""``streambridge import``: a Kinesis stream as PostHog events (or JSON lines)."""

from __future__ import annotations

import argparse
import logging
import os
import sqlite3
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import attrs

from streambridge._util import parse_iso_datetime
from streambridge.cli._common import (
    EXIT_DEAD_LETTER,
    EXIT_DESTINATION,
    EXIT_OK,
    FailedError,
    Stop,
    UsageError,
    aws_client,
    aws_options,
    metrics_options,
    on_signals,
    open_dead_letters,
    open_output,
    output_closed,
    read_json_object,
    restore_signals,
    retry_policy,
    say,
    start_metrics,
)
from streambridge.cli._outcome import import_summary
from streambridge.cli._progress import Progress, import_reporter
from streambridge.errors import (
    ConfigurationError,
    DeadLetterError,
    FatalSinkError,
    OutputClosedError,
)
from streambridge.importer import (
    ImporterSettings,
    JsonLinesSink,
    PostHogSink,
    SQLiteCheckpointStore,
)
from streambridge.importer.importer import KinesisImporter
from streambridge.importer.settings import POSTHOG_NAMES, posthog_keys
from streambridge.retry import RetryPolicy

__all__ = [
    "add_parser",
    "event_sink",
    "importer_settings",
    "posthog_key",
    "settings_options",
    "sink_options",
]


def add_parser(commands: Any) -> None:
    """Add the ``import`` command to ``commands`` (argparse sub-parsers)."""
    imp = commands.add_parser("import", help="import a Kinesis stream as PostHog events")
    settings_options(imp)
    imp.add_argument("--checkpoints", type=Path, help="a SQLite file keeping the positions")
    imp.add_argument(
        "--start",
        "--from",
        dest="start",
        default="LATEST",
        help="TRIM_HORIZON, LATEST (default) or an ISO 8601 time (AT_TIMESTAMP)",
    )
    imp.add_argument(
        "--until",
        metavar="TIME",
        help="an ISO 8601 time: read each shard up to the first record that arrived after it, "
        "checkpoint on the last at or before it, and stop once every shard got there; with "
        "--from, an exact window",
    )
    sink_options(imp, output_help="write events as JSON lines here (- = stdout)")
    imp.add_argument(
        "--max-records",
        type=int,
        help="stop after exactly this many records (the checkpoints end at the last one)",
    )
    imp.add_argument(
        "--until-caught-up", action="store_true", help="stop once every shard is at its tip"
    )
    imp.add_argument(
        "--force",
        action="store_true",
        help="replace a non-empty --output file (without --checkpoints it is refused)",
    )
    aws_options(imp)
    metrics_options(imp)
    imp.set_defaults(run=_import)


def settings_options(parser: argparse.ArgumentParser) -> None:
    """The options that make the importer's settings (``import`` and ``kcl``)."""
    parser.add_argument(
        "--config",
        "--settings",
        dest="config",
        type=Path,
        help="a JSON file of the PostHog app's configuration (kinesisStreamName, eventKey, "
        "additionalPropertyMappings, awsRegion, iamAccessKeyId, iamSecretAccessKey); its IAM "
        "keys, when set, are used instead of the AWS environment's credentials",
    )
    parser.add_argument("--stream", help="the Kinesis Data Stream (or kinesisStreamName)")
    parser.add_argument("--event-key", help="dotted path to the event name (or eventKey)")
    parser.add_argument("--mappings", help="additionalPropertyMappings: 'a.b:c,d:e'")
    parser.add_argument(
        "--personless",
        action="store_true",
        help="events without a mapped distinct_id are personless ($process_person_profile: "
        "false) instead of all belonging to one 'AWS Kinesis' person",
    )


def sink_options(parser: argparse.ArgumentParser, *, output_help: str, output: str = "-") -> None:
    """The options that say where events go (``import`` and ``kcl``)."""
    parser.add_argument("--output", default=output, help=output_help)
    parser.add_argument("--posthog-host", help="send the events to this PostHog host instead")
    parser.add_argument(
        "--posthog-key-file",
        type=Path,
        help="a file holding the PostHog project API key (or set POSTHOG_API_KEY)",
    )
    parser.add_argument(
        "--posthog-key",
        help="the PostHog project API key; every local user can read a command line (ps): "
        "prefer POSTHOG_API_KEY or --posthog-key-file",
    )
    parser.add_argument(
        "--historical",
        action="store_true",
        help="send to PostHog as a historical migration (backfills of old data)",
    )
    parser.add_argument(
        "--dead-letter",
        metavar="FILE|s3://BUCKET/PREFIX|SQS-URL",
        help="keep every record skipped, with the reason, as JSON lines: appended to a file "
        "(created 0600), or put under an S3 prefix, or sent to an SQS queue",
    )


def _import(args: argparse.Namespace) -> int:

    settings = importer_settings(args)
    if args.max_records is not None and args.max_records < 1:
        raise UsageError("--max-records must be at least 1")
    until = _until(args)
    retry = retry_policy(args, base_delay=1.0, max_delay=30.0)
    client, store, (sink, close, abandon), letters = _open(args, settings)
    importer = KinesisImporter(
        client,
        settings,
        sink=sink,
        checkpoints=store,
        on_skip=letters,
        backoff=retry or RetryPolicy(base_delay=1.0, max_delay=30.0),
    )
    stopped = Stop()

    def on_signal(signum: int) -> None:
        stopped.set(signum)
        abandon()  # a sink call waiting out an outage gives up now: nothing is checkpointed

    previous = on_signals(on_signal)
    progress = Progress(enabled=not args.quiet)

    report = import_reporter(progress, importer, until)

    watched = sys.stdout if args.output == "-" else None
    closed = False

    def should_stop() -> bool:
        nonlocal closed
        closed = closed or (watched is not None and output_closed(watched))
        return closed or stopped.signal is not None

    stop_metrics = start_metrics(args, importer.metrics, "importer", settings.stream_name)
    try:
        totals = importer.run(
            stop=should_stop,
            max_records=args.max_records,
            until_caught_up=args.until_caught_up,
            until=until,
            on_poll=report,
        )
    except OutputClosedError:  # `| head`: the reader has what it wanted; end as Unix tools do
        _silence_stdout()
        say(
            f"output closed; stopping ({importer.undelivered} event(s) not written, and not "
            f"checkpointed: the next run reads them again)",
            events=importer.undelivered,
        )
        return EXIT_OK
    except FatalSinkError as exc:
        raise FailedError(
            f"{exc} ({importer.undelivered} event(s) not delivered; the checkpoints did not "
            f"move past them)",
            EXIT_DESTINATION,
        ) from exc
    except DeadLetterError as exc:
        raise FailedError(
            f"{exc}; the checkpoints did not move past the skipped record(s), so the next run "
            f"reads them again",
            EXIT_DEAD_LETTER,
        ) from exc
    finally:
        progress.done()
        stop_metrics()
        close()
        if store is not None:
            store.close()
        if letters is not None:
            letters.close()
        restore_signals(previous)
    if closed:  # the reader left while we waited for records: end as Unix tools do
        _silence_stdout()
        say("output closed; stopping")
        return EXIT_OK
    return import_summary(args, settings, totals, stopped, resumed=store is not None)


def _until(args: argparse.Namespace) -> datetime | None:
    """``--until`` as an aware datetime (no offset: UTC)."""
    if args.until is None:
        return None
    until = parse_iso_datetime(args.until)
    if until is None:
        msg = f"--until must be an ISO 8601 time (2026-11-30T00:00:00Z), got {args.until!r}"
        raise UsageError(msg)
    return until


def _open(args: argparse.Namespace, settings: ImporterSettings) -> Any:
    """The client, the checkpoint store, the sink and the dead letters, in that order.

    What can be refused is opened first, and what was opened is closed again when a later
    one is refused.
    """
    keys = (settings.access_key_id, settings.secret_access_key)
    client = aws_client(args, "kinesis", keys=keys)
    try:
        store = SQLiteCheckpointStore(args.checkpoints) if args.checkpoints else None
    except (OSError, sqlite3.Error) as exc:
        msg = f"cannot open the checkpoints file {str(args.checkpoints)!r}: {exc}"
        raise UsageError(msg) from None
    try:
        sink = event_sink(args)
    except UsageError:
        if store is not None:
            store.close()
        raise
    try:
        letters = open_dead_letters(args.dead_letter, args)
    except UsageError:
        sink[1]()
        if store is not None:
            store.close()
        raise
    return client, store, sink, letters


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that flushing it at exit does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # no real stdout (a test's capture): nothing to silence
        pass


def importer_settings(args: argparse.Namespace) -> ImporterSettings:
    """From --config (the PostHog app's keys), with the options given on the command line."""
    config: dict[str, object] = {}
    if args.config is not None:  # the app's keys, or the names its page shows
        try:
            config = posthog_keys(read_json_object(args.config, "config file"))
        except ConfigurationError as exc:
            raise UsageError(f"{args.config}: {exc}") from None
    for key, value in (
        ("kinesisStreamName", args.stream),
        ("eventKey", args.event_key),
        ("additionalPropertyMappings", args.mappings),
    ):
        if value is not None:
            config[key] = value
    if args.region is None and isinstance(config.get("awsRegion"), str) and config["awsRegion"]:
        args.region = config["awsRegion"]
    for key, option in (("kinesisStreamName", "--stream"), ("eventKey", "--event-key")):
        if not config.get(key):
            shown = next(name for name, k in POSTHOG_NAMES.items() if k == key)
            raise UsageError(f"no {key} ({shown!r}): pass {option} or put it in --config")
    return ImporterSettings.from_posthog_config(
        config, start_position=getattr(args, "start", "LATEST"), personless=args.personless
    )


def posthog_key(args: argparse.Namespace) -> str:
    """The PostHog key: --posthog-key-file, POSTHOG_API_KEY, or --posthog-key (with a warning).

    A key on the command line is in ``ps`` and ``/proc/PID/cmdline`` for every local user.
    """
    if args.posthog_key and args.posthog_key_file:
        raise UsageError("--posthog-key and --posthog-key-file: give one of them")
    if args.posthog_key_file is not None:
        try:
            key = Path(args.posthog_key_file).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            what = getattr(exc, "strerror", None) or "not UTF-8 text"
            raise UsageError(f"cannot read {str(args.posthog_key_file)!r}: {what}") from None
        if not key:
            raise UsageError(f"{str(args.posthog_key_file)!r} is empty: it should hold the key")
        return key
    if args.posthog_key:
        say(
            "warning: a key on the command line can be read by every user of this machine "
            "(ps); set POSTHOG_API_KEY or use --posthog-key-file instead",
            level=logging.WARNING,
        )
        return str(args.posthog_key)
    key = os.environ.get("POSTHOG_API_KEY", "").strip()
    if not key:
        raise UsageError(
            "no PostHog key: set POSTHOG_API_KEY, or pass --posthog-key-file FILE, with "
            "--posthog-host"
        )
    return key


def event_sink(
    args: argparse.Namespace, *, patience: float | None = None
) -> tuple[Callable[[Any], object], Callable[[], None], Callable[[], None]]:
    """Where imported events go (PostHog, or JSON lines); how to close it; how to abandon it.

    ``patience`` (seconds) bounds one call of the PostHog sink, its own retries and request
    timeout included (``kcl --sink-patience``).
    """
    if args.posthog_key or args.posthog_key_file or args.posthog_host:
        if not args.posthog_host:
            raise UsageError("a PostHog key needs --posthog-host")
        key = posthog_key(args)
        sink = PostHogSink(
            api_key=key,
            host=args.posthog_host,
            historical_migration=args.historical,
        )
        if patience is not None:  # the user's bound, not the sink's own 60 s inside it
            sink.retry = attrs.evolve(
                sink.retry, max_elapsed=min(sink.retry.max_elapsed, max(patience, 0.01))
            )
            sink.timeout = max(min(sink.timeout, patience), 1.0)
        return sink, lambda: None, sink.abandon
    # A run that resumes from checkpoints (or the KCL's) adds to the file; else a new file.
    resumes = getattr(args, "checkpoints", None) is not None or args.command == "kcl"
    force = getattr(args, "force", False)
    output = (
        sys.stdout
        if args.output == "-"
        else open_output(Path(args.output), append=resumes, force=force)
    )

    def close() -> None:
        if output is not sys.stdout:
            output.close()

    lines = JsonLinesSink(output)
    return lines, close, lines.abandon
