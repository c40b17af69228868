"""The ``streambridge`` command: forward, import, check, demo.

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
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from botocore.exceptions import BotoCoreError, ClientError

from streambridge._aws import build_client
from streambridge.deadletter import DeadLetterFile, read_dead_letters
from streambridge.errors import (
    ConfigurationError,
    DeliveryError,
    FatalSinkError,
    ForwardAbortedError,
    StreambridgeError,
)
from streambridge.results import ForwardResult, ImportResult, ImportTotals
from streambridge.settings import ForwarderSettings, ImporterSettings

__all__ = ["main"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_AWS, EXIT_DESTINATION = 0, 1, 2, 3, 4
EXIT_INTERRUPTED = 130  # 128 + SIGINT; SIGTERM gives 143


class _UsageError(Exception):
    """Bad arguments or input: one line, exit 2."""


class _FailedError(Exception):
    """A failure already put into words, with its exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    args = _parser().parse_args(argv)
    if args.command != "demo":
        _log_to_stderr()
    try:
        return int(args.run(args))
    except (_UsageError, ConfigurationError) as exc:
        message, code = str(exc), EXIT_USAGE
    except _FailedError as exc:
        message, code = str(exc), exc.code
    except FatalSinkError as exc:
        message, code = str(exc), EXIT_DESTINATION
    except DeliveryError as exc:
        undelivered = f" ({len(exc.undelivered)} records not delivered)" if exc.undelivered else ""
        message, code = f"{exc}{undelivered}", EXIT_AWS
    except StreambridgeError as exc:
        message, code = str(exc), EXIT_FAILED
    except (BotoCoreError, ClientError) as exc:
        message, code = f"AWS: {exc}", EXIT_AWS
    except KeyboardInterrupt:
        message, code = "interrupted", EXIT_INTERRUPTED
    print(f"streambridge: error: {message}", file=sys.stderr)
    return code


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time of each record."""

    @property
    def stream(self) -> IO[str]:
        return sys.stderr

    @stream.setter
    def stream(self, value: object) -> None:
        pass


def _log_to_stderr() -> None:
    """Send the library's warnings (retries exhausted, skipped records…) to stderr."""
    logger = logging.getLogger("streambridge")
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("streambridge: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.WARNING)


# --------------------------------------------------------------------------- arguments


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="streambridge",
        description="Move analytics events between apps and AWS Kinesis.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    forward = commands.add_parser(
        "forward", help="send mParticle batches (JSON lines or a JSON array) to Firehose"
    )
    forward.add_argument("input", nargs="?", default="-", help="a file, or - for stdin (default)")
    forward.add_argument("--stream", help="the Firehose delivery stream (Delivery Stream Name)")
    forward.add_argument(
        "--settings", type=Path, help="a JSON file of mParticle connection settings (display names)"
    )
    forward.add_argument(
        "--put-mode",
        choices=["batch", "single"],
        default="batch",
        help="PutRecordBatch (default) or one PutRecord per record",
    )
    forward.add_argument(
        "--newline", action="store_true", help="end every record with a newline (NDJSON in S3)"
    )
    forward.add_argument(
        "--dead-letter",
        type=Path,
        help="append every record not delivered here, with the reason, as JSON lines",
    )
    forward.add_argument("--failed-out", type=Path, help=argparse.SUPPRESS)  # the old name
    forward.add_argument(
        "--replay",
        type=Path,
        metavar="FILE",
        help="re-send the records of a dead-letter FILE (instead of reading batches)",
    )
    _aws_options(forward)
    forward.set_defaults(run=_forward)

    imp = commands.add_parser("import", help="import a Kinesis stream as PostHog events")
    imp.add_argument("--stream", required=True, help="the Kinesis Data Stream")
    imp.add_argument("--event-key", required=True, help="dotted path to the event name")
    imp.add_argument("--mappings", default="", help="additionalPropertyMappings: 'a.b:c,d:e'")
    imp.add_argument("--checkpoints", type=Path, help="a SQLite file keeping the positions")
    imp.add_argument(
        "--start", default="LATEST", help="TRIM_HORIZON, LATEST (default) or an ISO 8601 time"
    )
    imp.add_argument("--output", default="-", help="write events as JSON lines here (- = stdout)")
    imp.add_argument("--posthog-host", help="send the events to this PostHog host instead")
    imp.add_argument("--posthog-key", help="the PostHog project API key (with --posthog-host)")
    imp.add_argument(
        "--dead-letter",
        type=Path,
        help="append every record skipped here, with the reason, as JSON lines",
    )
    imp.add_argument("--max-records", type=int, help="stop after at least this many events")
    imp.add_argument(
        "--until-caught-up", action="store_true", help="stop once every shard is at its tip"
    )
    _aws_options(imp)
    imp.set_defaults(run=_import)

    check = commands.add_parser(
        "check", help="verify streams and credentials; print the IAM policy the options need"
    )
    check.add_argument("--firehose-stream", help="a Firehose delivery stream to check")
    check.add_argument("--kinesis-stream", help="a Kinesis Data Stream to check (for import)")
    check.add_argument("--put-mode", choices=["batch", "single"], default="batch")
    _aws_options(check)
    check.set_defaults(run=_check)

    demo = commands.add_parser(
        "demo", help="both halves on an embedded local AWS, with the sample batches (no account)"
    )
    demo.set_defaults(run=_demo)
    return parser


def _aws_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("AWS")
    group.add_argument("--region", help="AWS region (default: the AWS environment's)")
    group.add_argument("--profile", help="a named profile from the AWS config files")
    group.add_argument("--endpoint-url", help="another endpoint (LocalStack, a local AWS…)")
    group.add_argument(
        "--quiet", action="store_true", help="no progress on stderr, even on a terminal"
    )


def _client(args: argparse.Namespace, service: str) -> Any:
    """A client from the AWS environment, with botocore's own retries off."""
    import boto3  # noqa: PLC0415

    # boto3 reads AWS_DEFAULT_REGION; AWS_REGION is what the other AWS SDKs and tools use
    region = args.region or os.environ.get("AWS_REGION") or None
    session: Any = boto3.Session(profile_name=args.profile, region_name=region)
    if session.region_name is None:
        raise _UsageError("no AWS region: pass --region or set AWS_REGION / AWS_DEFAULT_REGION")
    return build_client(
        service,
        region=session.region_name,
        access_key_id=None,  # the session's credentials: environment, profile, role…
        secret_access_key=None,
        session=session,
        endpoint_url=args.endpoint_url,
    )


# --------------------------------------------------------------------------- forward


def _forward(args: argparse.Namespace) -> int:
    from streambridge.forwarder import FirehoseForwarder  # noqa: PLC0415

    settings = _forwarder_settings(args)
    unreadable: list[str] = []
    dead_path: Path | None = args.dead_letter or args.failed_out
    if args.replay is not None and args.input != "-":
        raise _UsageError("--replay reads a dead-letter file: give no input file with it")
    if args.replay is not None and dead_path is not None and _same_file(args.replay, dead_path):
        raise _UsageError("--dead-letter must be another file than the one --replay reads")
    source = None if args.replay is not None else _open_input(args.input)
    client = _client(args, "firehose")
    letters = _open_dead_letters(dead_path)
    forwarder = FirehoseForwarder(
        client,
        settings,
        put_mode=args.put_mode,
        record_delimiter=b"\n" if args.newline else b"",
        on_failure=letters,
    )
    progress = _Progress(enabled=not args.quiet)
    stopped = _Stop(again_interrupts=True)
    previous = _on_signals(stopped.set)
    try:
        if args.replay is not None:
            result = forwarder.send(_replayed(args.replay, stopped))
        else:
            assert source is not None  # noqa: S101 - opened above
            batches = _read_batches(source, args.input, unreadable, progress, stopped)
            result = forwarder.forward_many(batches) + forwarder.flush()
    except DeliveryError as exc:
        raise _undelivered_failure(exc, letters, dead_path, stopped.signal) from exc
    finally:
        progress.done()
        _restore_signals(previous)
        if letters is not None:
            letters.close()
    print(_forward_summary(result, unreadable))
    for line in unreadable[:5]:
        print(f"  unreadable input: {line}", file=sys.stderr)
    for rejected in result.rejected[:5]:
        print(f"  rejected batch {rejected.index}: {rejected.reason}", file=sys.stderr)
    if result.failed:
        where = f"; written to {str(dead_path)!r}" if dead_path else " (keep them: --dead-letter)"
        print(f"  {len(result.failed)} record(s) not delivered{where}", file=sys.stderr)
    if stopped.signal is not None:
        print(
            f"streambridge: stopped by {stopped.name} before the end of the input; what was "
            f"read was delivered or is counted above",
            file=sys.stderr,
        )
        return 128 + stopped.signal
    return EXIT_FAILED if (result.failed or result.rejected or unreadable) else EXIT_OK


def _undelivered_failure(
    exc: DeliveryError,
    letters: DeadLetterFile | None,
    dead_path: Path | None,
    stopped_signal: int | None = None,
) -> BaseException:
    """The one-line failure for an error that carries undelivered records (dead-lettered)."""
    count = len(exc.undelivered)
    cause = exc.__cause__
    message = str(cause) if isinstance(cause, (_UsageError, _InterruptedError)) else str(exc)
    if count and letters is not None:
        letters.write_undelivered(exc.undelivered, exc.error_code or "NotDelivered", str(exc))
        message += f" ({count} record(s) not delivered, written to {str(dead_path)!r})"
    elif count:
        message += f" ({count} record(s) not delivered; --dead-letter FILE keeps them)"
    if isinstance(exc, ForwardAbortedError) and isinstance(cause, _UsageError):
        return _FailedError(message, EXIT_USAGE)
    if isinstance(exc, ForwardAbortedError) and isinstance(cause, _InterruptedError):
        return _FailedError(message, 128 + (stopped_signal or signal.SIGINT))
    if isinstance(exc, ForwardAbortedError):
        return _FailedError(message, EXIT_FAILED)
    return _FailedError(message, EXIT_AWS)


def _same_file(one: Path, other: Path) -> bool:
    return one.resolve() == other.resolve()


def _open_dead_letters(path: Path | None) -> DeadLetterFile | None:
    if path is None:
        return None
    try:
        return DeadLetterFile(path)
    except OSError as exc:
        raise _UsageError(f"cannot write {str(path)!r}: {exc.strerror}") from None


def _replayed(path: Path, stopped: _Stop) -> Iterator[bytes]:
    """The records of a forwarder dead-letter file (importer lines are refused)."""
    try:
        for number, letter in enumerate(read_dead_letters(path), start=1):
            if stopped.signal is not None:
                return
            if letter.kind != "failed":
                raise _UsageError(
                    f"{str(path)!r} entry {number} is an importer dead letter ({letter.kind}); "
                    f"only the forwarder's can be replayed"
                )
            yield letter.data
    except OSError as exc:
        raise _UsageError(f"cannot read {str(path)!r}: {exc.strerror}") from None
    except ValueError as exc:
        raise _UsageError(str(exc)) from None


def _forwarder_settings(args: argparse.Namespace) -> ForwarderSettings:
    mapping: dict[str, object] = {}
    if args.settings is not None:
        try:
            loaded = json.loads(args.settings.read_text(encoding="utf-8"))
        except OSError as exc:
            raise _UsageError(
                f"cannot read settings file {str(args.settings)!r}: {exc.strerror}"
            ) from None
        except ValueError as exc:
            raise _UsageError(f"settings file {str(args.settings)!r} is not JSON: {exc}") from None
        if not isinstance(loaded, dict):
            raise _UsageError(f"settings file {str(args.settings)!r} must hold a JSON object")
        mapping.update(loaded)
    if args.stream:
        mapping = {k: v for k, v in mapping.items() if _norm(k) not in _STREAM_KEYS}
        mapping["Delivery Stream Name"] = args.stream
    if not any(_norm(k) in _STREAM_KEYS for k in mapping):
        raise _UsageError(
            "no delivery stream: pass --stream or 'Delivery Stream Name' in --settings"
        )
    if args.region is None:
        for key, value in mapping.items():
            if _norm(key) in _REGION_KEYS and isinstance(value, str) and value:
                args.region = value
    return ForwarderSettings.from_mparticle(mapping)


def _norm(name: object) -> str:
    return " ".join(str(name).replace("_", " ").split()).casefold()


_STREAM_KEYS = {"delivery stream name"}
_REGION_KEYS = {"aws region endpoint", "region"}


def _open_input(name: str) -> IO[str]:
    if name == "-":
        return sys.stdin
    try:
        return Path(name).open(encoding="utf-8")
    except OSError as exc:
        raise _UsageError(f"cannot read {name!r}: {exc.strerror}") from None


def _read_batches(
    stream: IO[str], name: str, unreadable: list[str], progress: _Progress, stopped: _Stop
) -> Iterator[object]:
    """Batches from a JSON array or JSON lines, streamed; unparsable lines are noted."""
    try:
        first = _peek(stream)
        if first == "[":
            try:
                items = json.load(stream)
            except ValueError as exc:
                raise _UsageError(
                    f"{name!r} starts with '[' but is not a JSON array: {exc}"
                ) from None
            for item in items:
                if stopped.signal is not None:
                    return
                progress.tick()
                yield item
            return
        for number, line in enumerate(stream, start=1):
            if stopped.signal is not None:
                return
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except ValueError as exc:
                unreadable.append(f"line {number}: not JSON ({exc})")
                continue
            progress.tick()
            yield item
    except UnicodeDecodeError:
        raise _UsageError(f"{name!r} is not UTF-8 text") from None
    finally:
        if stream is not sys.stdin:
            stream.close()


def _peek(stream: IO[str]) -> str:
    """The first non-space character, leaving the stream able to read it again."""
    buffered = getattr(stream, "buffer", None)
    if buffered is not None and hasattr(buffered, "peek"):
        head = buffered.peek(64)[:64].decode("utf-8", "ignore").lstrip()
        if head:
            return str(head[0])
    if stream.seekable():
        position = stream.tell()
        head = stream.read(64).lstrip()
        stream.seek(position)
        return head[:1]
    return ""


def _forward_summary(result: ForwardResult, unreadable: list[str]) -> str:
    parts = [
        f"sent {result.sent} record(s) in {result.api_calls} call(s) ({result.retries} retries)",
        f"failed {len(result.failed)}",
        f"skipped {len(result.skipped)}",
        f"rejected {len(result.rejected)}",
        f"unreadable {len(unreadable)}",
        f"events filtered {result.filtered_events}",
        f"malformed events dropped {result.dropped_events}",
    ]
    return "; ".join(parts)


# --------------------------------------------------------------------------- import


def _import(args: argparse.Namespace) -> int:
    from streambridge.checkpoints import SQLiteCheckpointStore  # noqa: PLC0415
    from streambridge.importer import KinesisImporter  # noqa: PLC0415

    settings = ImporterSettings(
        stream_name=args.stream,
        event_key=args.event_key,
        additional_property_mappings=args.mappings,
        start_position=args.start,
    )
    if args.max_records is not None and args.max_records < 1:
        raise _UsageError("--max-records must be at least 1")
    sink, close, abandon = _event_sink(args)
    letters = _open_dead_letters(args.dead_letter)
    store = SQLiteCheckpointStore(args.checkpoints) if args.checkpoints else None
    importer = KinesisImporter(
        _client(args, "kinesis"), settings, sink=sink, checkpoints=store, on_skip=letters
    )
    stopped = _Stop()

    def on_signal(signum: int) -> None:
        stopped.set(signum)
        abandon()  # a sink call waiting out an outage gives up now: nothing is checkpointed

    previous = _on_signals(on_signal)
    progress = _Progress(enabled=not args.quiet)

    def report(result: ImportResult, totals: ImportTotals) -> None:
        lag = max(totals.lag.values(), default=0)
        rate = totals.records / max(time.monotonic() - progress.started, 1e-9)
        progress.show(
            f"{totals.events} events, {totals.skipped} skipped, {rate:,.0f} records/s, lag {lag} ms"
        )

    try:
        totals = importer.run(
            stop=lambda: stopped.signal is not None,
            max_events=args.max_records,
            until_caught_up=args.until_caught_up,
            on_poll=report,
        )
    except FatalSinkError as exc:
        raise _FailedError(
            f"{exc} ({importer.undelivered} event(s) not delivered; the checkpoints did not "
            f"move past them)",
            EXIT_DESTINATION,
        ) from exc
    finally:
        progress.done()
        close()
        if store is not None:
            store.close()
        if letters is not None:
            letters.close()
        _restore_signals(previous)
    where = f"; checkpoints in {args.checkpoints}" if args.checkpoints else ""
    by = f" ({stopped.name})" if stopped.signal is not None else ""
    print(
        f"imported {totals.events} event(s) from {totals.records} record(s) in {totals.polls} "
        f"poll(s); skipped {totals.skipped}; sink failures {totals.sink_failures}; "
        f"not delivered {totals.undelivered}; stopped: {totals.stopped_because}{by}{where}",
        file=sys.stderr,
    )
    if totals.undelivered:
        print(
            f"streambridge: error: {totals.undelivered} event(s) read were not delivered; the "
            f"checkpoints did not move past them, so the next run reads them again",
            file=sys.stderr,
        )
        return EXIT_FAILED
    return EXIT_OK


def _event_sink(
    args: argparse.Namespace,
) -> tuple[Callable[[Any], object], Callable[[], None], Callable[[], None]]:
    """Where imported events go (PostHog, or JSON lines); how to close it; how to abandon it."""
    from streambridge.sinks import JsonLinesSink, PostHogSink  # noqa: PLC0415

    if args.posthog_key or args.posthog_host:
        if not (args.posthog_key and args.posthog_host):
            raise _UsageError("--posthog-host and --posthog-key go together")
        sink = PostHogSink(api_key=args.posthog_key, host=args.posthog_host)
        return sink, lambda: None, sink.abandon
    output = _open_output(Path(args.output)) if args.output != "-" else sys.stdout

    def close() -> None:
        if output is not sys.stdout:
            output.close()

    return JsonLinesSink(output), close, lambda: None


class _InterruptedError(Exception):
    """A second SIGINT / SIGTERM: stop now (what was built is carried, not lost)."""


class _Stop:
    """Which signal asked the command to stop (None: none yet).

    With ``again_interrupts``, a second signal raises in the main thread, to end a read
    blocked on a pipe; the forwarder then carries every record not delivered.
    """

    def __init__(self, *, again_interrupts: bool = False) -> None:
        self.signal: int | None = None
        self.again_interrupts = again_interrupts

    def set(self, signum: int = signal.SIGINT) -> None:
        if self.signal is None:
            self.signal = signum
        elif self.again_interrupts:
            raise _InterruptedError(f"stopped by a second {signal.Signals(signum).name}")

    @property
    def name(self) -> str:
        return signal.Signals(self.signal).name if self.signal is not None else ""


def _on_signals(handler: Callable[[int], None]) -> Any:
    """On SIGINT or SIGTERM, ask the command to stop cleanly (what was read is delivered)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return {
        signum: signal.signal(signum, lambda number, _frame: handler(number))
        for signum in (signal.SIGINT, signal.SIGTERM)
    }


def _restore_signals(previous: Any) -> None:
    for signum, handler in (previous or {}).items():
        signal.signal(signum, handler)


# --------------------------------------------------------------------------- check


def _check(args: argparse.Namespace) -> int:
    if not args.firehose_stream and not args.kinesis_stream:
        raise _UsageError("name something to check: --firehose-stream and/or --kinesis-stream")
    from streambridge.iam import forwarder_policy, importer_policy  # noqa: PLC0415

    if args.firehose_stream:
        from streambridge.forwarder import FirehoseForwarder  # noqa: PLC0415

        client = _client(args, "firehose")
        settings = ForwarderSettings(delivery_stream_name=args.firehose_stream)
        info = FirehoseForwarder(client, settings, put_mode=args.put_mode).check()
        print(
            f"firehose: delivery stream {info.name!r} is {info.status}, source {info.stream_type}"
        )
        print(json.dumps(forwarder_policy(info.arn, put_mode=args.put_mode), indent=2))
    if args.kinesis_stream:
        client = _client(args, "kinesis")
        arn = _check_kinesis(client, args.kinesis_stream)
        print(json.dumps(importer_policy(arn), indent=2))
    return EXIT_OK


def _check_kinesis(client: Any, stream: str) -> str:
    """ListShards, GetShardIterator and GetRecords on one shard; return the stream's ARN."""
    try:
        shards = client.list_shards(StreamName=stream)["Shards"]
        if not shards:
            raise _UsageError(f"Kinesis stream {stream!r} has no shards")
        iterator = client.get_shard_iterator(
            StreamName=stream, ShardId=shards[0]["ShardId"], ShardIteratorType="LATEST"
        )["ShardIterator"]
        client.get_records(ShardIterator=iterator, Limit=1)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        operation = exc.operation_name
        if code == "ResourceNotFoundException":
            raise _UsageError(f"Kinesis stream {stream!r} was not found ({exc})") from None
        raise _UsageError(
            f"{operation} on Kinesis stream {stream!r} failed ({code}): the importer needs "
            f"kinesis:ListShards, kinesis:GetShardIterator and kinesis:GetRecords"
        ) from None
    region = client.meta.region_name
    print(f"kinesis: stream {stream!r} readable: {len(shards)} shard(s) listed, records readable")
    return f"arn:aws:kinesis:{region}:{{account-id}}:stream/{stream}"


# --------------------------------------------------------------------------- demo


def _demo(args: argparse.Namespace) -> int:
    try:
        from streambridge._demo import run_demo  # noqa: PLC0415
    except ModuleNotFoundError as exc:  # pragma: no cover - the `local` extra is missing
        raise _UsageError(
            f"the demo needs the 'local' extra ({exc.name} is missing): "
            "pip install 'streambridge[local]'"
        ) from None
    return run_demo()


# --------------------------------------------------------------------------- output helpers


def _open_output(path: Path) -> IO[str]:
    try:
        return path.open("w", encoding="utf-8")
    except OSError as exc:
        raise _UsageError(f"cannot write {str(path)!r}: {exc.strerror}") from None


class _Progress:
    """Progress on stderr, only when it is a terminal; at most every half second."""

    def __init__(self, *, enabled: bool) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self.count = 0
        self.started = time.monotonic()
        self._last = 0.0
        self._shown = False

    def tick(self) -> None:
        self.count += 1
        if self.enabled:
            rate = self.count / max(time.monotonic() - self.started, 1e-9)
            self.show(f"{self.count} batches read, {rate:,.0f}/s")

    def show(self, text: str) -> None:
        now = time.monotonic()
        if not self.enabled or now - self._last < 0.5:  # noqa: PLR2004
            return
        self._last = now
        self._shown = True
        sys.stderr.write(f"\r{text}\x1b[K")
        sys.stderr.flush()

    def done(self) -> None:
        if self._shown:
            sys.stderr.write("\n")
