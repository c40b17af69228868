"""``streambridge forward``: mParticle batches (JSON lines or a JSON array) to Firehose."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from streambridge._settings import normalise
from streambridge.cli._common import (
    EXIT_DEAD_LETTER,
    EXIT_FAILED,
    EXIT_OK,
    FailedError,
    Stop,
    UsageError,
    aws_client,
    aws_options,
    forwarding_options,
    metrics_options,
    on_signals,
    open_dead_letters,
    read_json_object,
    restore_signals,
    retry_policy,
    say,
    start_metrics,
)
from streambridge.cli._input import (
    Places,
    Unreadable,
    is_regular,
    open_input,
    read_batches,
    read_objects,
)
from streambridge.cli._outcome import drop_keeper, keeper, replayed, report, undelivered_failure
from streambridge.cli._progress import Progress
from streambridge.cli._resume import Resume
from streambridge.cli._s3source import S3Resume, S3Source, is_s3_url
from streambridge.cli.dry_run import dry_run
from streambridge.cli.dry_run import report as dry_run_report
from streambridge.deadletter import DeadLetterTarget
from streambridge.deadletter_remote import is_remote_target
from streambridge.errors import DeliveryError
from streambridge.forwarder import FLUSH, FailedRecord, ForwarderSettings
from streambridge.forwarder.forwarder import FirehoseForwarder
from streambridge.retry import RetryPolicy

__all__ = ["add_parser"]


def add_parser(commands: Any) -> None:
    """Add the ``forward`` command to ``commands`` (argparse sub-parsers)."""
    forward = commands.add_parser(
        "forward", help="send mParticle batches (JSON lines or a JSON array) to Firehose"
    )
    forward.add_argument(
        "input",
        nargs="?",
        default="-",
        help="a file, - for stdin (default), or s3://BUCKET/PREFIX: the objects mParticle's S3 "
        "integration writes (JSON lines, gzip too), in key order",
    )
    forward.add_argument("--stream", help="the Firehose delivery stream (Delivery Stream Name)")
    forward.add_argument(
        "--settings",
        type=Path,
        help="a JSON file of mParticle connection settings (display names); its Access Key ID "
        "and Secret Access Key, when set, are used instead of the AWS environment's credentials",
    )
    forwarding_options(forward)
    forward.add_argument(
        "--dead-letter",
        metavar="FILE|s3://BUCKET/PREFIX|SQS-URL",
        help="keep every record not delivered, with the reason, as JSON lines: appended to a "
        "file (created 0600), or put under an S3 prefix, or sent to an SQS queue",
    )
    forward.add_argument(
        "--flush-interval",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="a live input (a pipe) that is quiet this long has what it gave sent at once, "
        "instead of waiting for 500 records or 4 MB (default 5; 0: never)",
    )
    forward.add_argument(
        "--checkpoints",
        type=Path,
        metavar="FILE",
        help="resumable: FILE (created 0600) holds how many lines of the input (for s3://, "
        "objects and lines) are settled (every record delivered or in --dead-letter); a rerun "
        "checks them and goes on after them. JSON lines only",
    )
    forward.add_argument(
        "--checkpoint-every",
        type=int,
        default=1,
        metavar="N",
        help="mark a checkpoint after every N batches (default 1); a mark is saved once every "
        "call before it has answered, without waiting for the calls after it, at most once per "
        "call: after a kill, at most the calls in flight are sent again",
    )
    forward.add_argument("--failed-out", help=argparse.SUPPRESS)  # the old name
    forward.add_argument(
        "--replay",
        type=Path,
        metavar="FILE",
        help="re-send the records of a dead-letter FILE (instead of reading batches)",
    )
    forward.add_argument(
        "--dry-run",
        action="store_true",
        help="send nothing: say what Firehose would bill for the input under each framing "
        "(as set, one record per batch, one per event, packed); a local input needs no AWS",
    )
    aws_options(forward)
    metrics_options(forward)
    forward.set_defaults(run=_forward)


def _forward(args: argparse.Namespace) -> int:
    settings = _forwarder_settings(args)
    unreadable = Unreadable()
    reached: list[str] = []  # where the input was read to: "line N" / "array item N"
    places = Places() if args.replay is None else None
    dead_path: str | None = args.dead_letter or args.failed_out
    _check_usage(args, dead_path)
    if args.dry_run:
        return _dry_run(args, settings, unreadable, reached, places)
    client = aws_client(args, "firehose", keys=(settings.access_key_id, settings.secret_access_key))
    source, letters, resume = _open(args, settings, dead_path)
    if letters is not None:  # lines that are no batch and malformed events are kept too
        unreadable.keep = keeper(letters, "unreadable")
    failures: list[FailedRecord] = []
    retry = retry_policy(args)
    forwarder = FirehoseForwarder(
        client,
        settings,
        put_mode=args.put_mode,
        record_delimiter=b"\n" if args.newline else b"",
        on_failure=letters if letters is not None or resume is None else failures.append,
        on_drop=None if letters is None else drop_keeper(letters, places),
        retry=retry or RetryPolicy(),
    )
    progress = Progress(
        enabled=not args.quiet, noun="batches" if args.replay is None else "records"
    )
    stopped = Stop(again_interrupts=True)
    previous = on_signals(stopped.set)
    stop_metrics = start_metrics(
        args, forwarder.metrics, "forwarder", settings.delivery_stream_name
    )
    try:
        if args.replay is not None:
            progress.detail = _with_counts(None, forwarder, settings)
            result = forwarder.send(replayed(args.replay, stopped, unreadable, progress))
        else:
            assert places is not None  # noqa: S101 - made above
            said = (unreadable, progress, stopped, reached)
            batches = _batches(args, source, resume, said, places)
            progress.detail = _with_counts(progress.detail, forwarder, settings)
            if resume is not None:  # settled only while nothing failed unkept
                batches = _checkpointed(batches, resume, args.checkpoint_every, letters, failures)
            result = forwarder.forward_many(batches) + forwarder.flush()
    except DeliveryError as exc:
        raise undelivered_failure(exc, letters, dead_path, stopped.signal, reached) from exc
    finally:
        progress.done()
        stop_metrics()
        restore_signals(previous)
        if letters is not None:
            letters.close()
    report(args, result, unreadable, places, dead_path, letters)
    for path in forwarder.unmatched_exclusions if result.batches else ():
        if "." in path:  # the first segment was checked; a later one may be misspelt
            say(
                f"warning: Metadata Field Exclusion {path!r} removed nothing from any of the "
                f"{result.batches} batch(es): check its spelling",
                level=logging.WARNING,
                delivery_stream=settings.delivery_stream_name,
            )
    if letters is not None and letters.unwritten:
        where = f" (the input was read up to {reached[-1]})" if reached else ""
        raise FailedError(
            f"{letters.unwritten} record(s) not delivered could not be written to "
            f"{str(dead_path)!r} ({letters.last_error}): they are written nowhere; send the input "
            f"again{where}",
            EXIT_DEAD_LETTER,
        )
    if stopped.signal is not None:
        where = f" (read up to {reached[-1]})" if reached else ""
        say(
            f"stopped by {stopped.name} before the end of the input{where}; what was read was "
            f"delivered or is counted above",
            level=logging.WARNING,
        )
        return 128 + stopped.signal
    return EXIT_FAILED if (result.failed or result.rejected or unreadable) else EXIT_OK


def _open(
    args: argparse.Namespace, settings: ForwarderSettings, dead_path: str | None
) -> tuple[Any, DeadLetterTarget | None, Resume | S3Resume | None]:
    """The input (a file, S3Source, None with --replay), dead letters, checkpoints; all or none."""
    source: Any
    if args.replay is not None:
        source = None  # --replay reads a dead-letter file, no input
    elif is_s3_url(args.input):
        source = S3Source(aws_client(args, "s3", attempts=5), args.input)
    else:
        source = open_input(args.input)
    letters = None
    try:
        letters = open_dead_letters(dead_path, args)
        return source, letters, _resume(args, settings, source)
    except UsageError:
        if source is not None and source is not sys.stdin.buffer and hasattr(source, "close"):
            source.close()
        if letters is not None:
            letters.close()
        raise


def _batches(
    args: argparse.Namespace,
    source: Any,
    resume: Resume | S3Resume | None,
    said: tuple[Unreadable, Progress, Stop, list[str]],
    places: Places,
) -> Iterator[object]:
    """The input's batches: a local file's or stdin's, or the S3 objects' in key order."""
    unreadable, progress, stopped, reached = said
    if not isinstance(source, S3Source):
        assert not isinstance(resume, S3Resume)  # noqa: S101 - made for the same input
        progress.detail = _file_detail(source)
        return read_batches(
            source, args.input, unreadable, progress, stopped, reached, args.flush_interval,
            places.shifts, resume,
        )  # fmt: skip
    progress.detail = lambda: (
        f", object {source.objects} ({source.key}), {source.bytes_read / 1e6:,.1f} MB read"
    )
    if isinstance(resume, S3Resume):
        objects = ((source.where(k), lines, skipped) for k, _, lines, skipped in resume.objects())
    else:
        objects = ((source.where(k), source.lines(k, e), 0) for k, e, _ in source.listing())
    return read_objects(objects, unreadable, progress, stopped, reached, places)


def _with_counts(
    detail: Callable[[], str] | None, forwarder: FirehoseForwarder, settings: ForwarderSettings
) -> Callable[[], str]:
    """The input's detail, then the records sent and failed so far (the forwarder's metrics)."""
    stream = settings.delivery_stream_name

    def more() -> str:
        now = forwarder.metrics.snapshot()
        sent, failed = now.counter("records_sent", stream), now.counter("records_failed", stream)
        return f"{detail() if detail else ''}, sent {sent:,}, failed {failed:,}"

    return more


def _dry_run(
    args: argparse.Namespace,
    settings: ForwarderSettings,
    unreadable: Unreadable,
    reached: list[str],
    places: Places | None,
) -> int:
    """``--dry-run``: the input read as ``forward`` reads it; the meter of each framing."""
    if args.replay is not None or args.checkpoints is not None or args.dead_letter:
        msg = (
            "--dry-run reads an input and sends nothing: no --replay, --checkpoints, --dead-letter"
        )
        raise UsageError(msg)
    assert places is not None  # noqa: S101 - made when there is no --replay
    source, _, _ = _open(args, settings, None)
    said = (unreadable, Progress(enabled=False), Stop(), reached)
    try:
        meters, batches = dry_run(
            _batches(args, source, None, said, places), settings, b"\n" if args.newline else b""
        )
    finally:
        if source is not sys.stdin.buffer and hasattr(source, "close"):
            source.close()
    print(dry_run_report(meters, batches))
    return EXIT_OK


def _file_detail(source: Any) -> Callable[[], str] | None:
    """``, 12.3 of 40.0 MB (31 %)`` for a regular file (as ``aws s3 cp`` shows); else None."""
    try:
        size = os.fstat(source.fileno()).st_size if is_regular(source) else 0
    except (OSError, ValueError, AttributeError):
        return None
    if not size:
        return None

    def detail() -> str:
        try:
            done = source.tell()
        except (OSError, ValueError):
            return ""
        return f", {done / 1e6:,.1f} of {size / 1e6:,.1f} MB ({done * 100 // size} %)"

    return detail


def _check_usage(args: argparse.Namespace, dead_path: str | None) -> None:
    if args.flush_interval < 0:
        raise UsageError("--flush-interval must be 0 (never) or more seconds")
    if args.replay is not None and args.input != "-":
        raise UsageError("--replay reads a dead-letter file: give no input file with it")
    if args.replay is not None and dead_path is not None and _same_file(args.replay, dead_path):
        raise UsageError("--dead-letter must be another file than the one --replay reads")


def _resume(
    args: argparse.Namespace, settings: ForwarderSettings, source: Any
) -> Resume | S3Resume | None:
    """``--checkpoints``: the input skipped past its settled lines; None without it."""
    if args.checkpoints is None:
        return None
    if args.checkpoint_every < 1:
        raise UsageError("--checkpoint-every must be at least 1")
    if args.replay is not None or source is None or args.input == "-":
        raise UsageError("--checkpoints needs an input file (not stdin, not --replay)")
    if settings.wait_for_complete_batch:
        raise UsageError(
            "--checkpoints cannot be used with Wait for Complete Batch: held sessions are in "
            "no checkpoint"
        )
    if isinstance(source, S3Source):
        return S3Resume(args.checkpoints, source)
    if not Path(args.input).is_file():
        raise UsageError("--checkpoints needs a regular file: a pipe cannot be read again")
    start = source.peek(64)[:64].lstrip(b" \t\r\n\xef\xbb\xbf")[:1]
    if start == b"[":
        raise UsageError("--checkpoints needs JSON lines (a batch a line), not a JSON array")
    return Resume(args.checkpoints, source, args.input)


def _checkpointed(
    batches: Iterator[object],
    resume: Resume | S3Resume,
    every: int,
    letters: DeadLetterTarget | None,
    failures: list[FailedRecord],
) -> Iterator[object]:
    """``batches`` with a checkpoint every ``every`` batches, and one at the end.

    A checkpoint moves only while every record not delivered is kept: in ``letters`` (none of
    its writes failed) or, without a dead letter, while none failed at all (``failures``).
    """

    def allowed() -> bool:
        return not letters.unwritten if letters is not None else not failures

    count = 0
    for item in batches:
        yield item
        if item is not FLUSH:
            count += 1
        if count >= every:
            count = 0
            yield resume.settled(allowed)
    yield resume.settled(allowed)


def _same_file(one: Path, other: str) -> bool:
    return not is_remote_target(other) and one.resolve() == Path(other).resolve()


def _forwarder_settings(args: argparse.Namespace) -> ForwarderSettings:
    mapping: dict[str, object] = {}
    if args.settings is not None:
        mapping.update(read_json_object(args.settings, "settings file"))
    if args.stream:
        mapping = {k: v for k, v in mapping.items() if normalise(k) not in _STREAM_KEYS}
        mapping["Delivery Stream Name"] = args.stream
    if not any(normalise(k) in _STREAM_KEYS for k in mapping):
        raise UsageError(
            "no delivery stream: pass --stream or 'Delivery Stream Name' in --settings"
        )
    if args.region is None:
        for key, value in mapping.items():
            if normalise(key) in _REGION_KEYS and isinstance(value, str) and value:
                args.region = value
    return ForwarderSettings.from_mparticle(mapping)


_STREAM_KEYS = {"delivery stream name"}
_REGION_KEYS = {"aws region endpoint", "region"}
