"""``streambridge forward``: mParticle batches (JSON lines or a JSON array) to Firehose."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs

from streambridge._settings import normalise
from streambridge.cli._common import (
    EXIT_AWS,
    EXIT_DEAD_LETTER,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    FailedError,
    Progress,
    Stop,
    StopNowError,
    UsageError,
    aws_client,
    aws_options,
    forwarding_options,
    on_signals,
    open_dead_letters,
    read_json_object,
    restore_signals,
    retry_policy,
)
from streambridge.cli._input import Unreadable, line_of, open_input, read_batches
from streambridge.cli._resume import Resume
from streambridge.deadletter import DeadLetterTarget, read_dead_letters
from streambridge.deadletter_remote import is_remote_target
from streambridge.errors import DeadLetterError, DeliveryError, ForwardAbortedError
from streambridge.forwarder import (
    FLUSH,
    DroppedEvent,
    FailedRecord,
    ForwarderSettings,
    ForwardResult,
)
from streambridge.forwarder.forwarder import FirehoseForwarder
from streambridge.retry import RetryPolicy

__all__ = ["add_parser"]


def add_parser(commands: Any) -> None:
    """Add the ``forward`` command to ``commands`` (argparse sub-parsers)."""
    forward = commands.add_parser(
        "forward", help="send mParticle batches (JSON lines or a JSON array) to Firehose"
    )
    forward.add_argument("input", nargs="?", default="-", help="a file, or - for stdin (default)")
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
        help="resumable: FILE (created 0600) holds how many lines of the input are settled "
        "(every record delivered or in --dead-letter); a rerun checks them and goes on after "
        "them. A JSON-lines file only",
    )
    forward.add_argument(
        "--checkpoint-every",
        type=int,
        default=2_000,
        metavar="N",
        help="batches between checkpoints (default 2000): at most this many are sent again "
        "after a kill; each checkpoint waits for the calls in flight",
    )
    forward.add_argument("--failed-out", help=argparse.SUPPRESS)  # the old name
    forward.add_argument(
        "--replay",
        type=Path,
        metavar="FILE",
        help="re-send the records of a dead-letter FILE (instead of reading batches)",
    )
    aws_options(forward)
    forward.set_defaults(run=_forward)


def _forward(args: argparse.Namespace) -> int:
    settings = _forwarder_settings(args)
    unreadable = Unreadable()
    reached: list[str] = []  # where the input was read to: "line N" / "array item N"
    shifts: list[tuple[int, int]] | None = [] if args.replay is None else None
    dead_path: str | None = args.dead_letter or args.failed_out
    _check_usage(args, dead_path)
    client = aws_client(args, "firehose", keys=(settings.access_key_id, settings.secret_access_key))
    source, letters, resume = _open(args, settings, dead_path)
    if letters is not None:  # lines that are no batch and malformed events are kept too
        unreadable.keep = _keeper(letters, "unreadable")
    failures: list[FailedRecord] = []
    retry = retry_policy(args)
    forwarder = FirehoseForwarder(
        client,
        settings,
        put_mode=args.put_mode,
        record_delimiter=b"\n" if args.newline else b"",
        on_failure=letters if letters is not None or resume is None else failures.append,
        on_drop=None if letters is None else _drop_keeper(letters, shifts),
        retry=retry or RetryPolicy(),
    )
    progress = Progress(enabled=not args.quiet)
    stopped = Stop(again_interrupts=True)
    previous = on_signals(stopped.set)
    try:
        if args.replay is not None:
            result = forwarder.send(_replayed(args.replay, stopped, unreadable))
        else:
            assert source is not None  # noqa: S101 - opened above
            batches = read_batches(
                source, args.input, unreadable, progress, stopped, reached, args.flush_interval,
                shifts, resume,
            )  # fmt: skip
            if resume is not None:  # settled only while nothing failed unkept
                batches = _checkpointed(batches, resume, args.checkpoint_every, letters, failures)
            result = forwarder.forward_many(batches) + forwarder.flush()
    except DeliveryError as exc:
        raise _undelivered_failure(exc, letters, dead_path, stopped.signal, reached) from exc
    finally:
        progress.done()
        restore_signals(previous)
        if letters is not None:
            letters.close()
    _report(args, result, unreadable, shifts, dead_path, letters)
    for path in forwarder.unmatched_exclusions if result.batches else ():
        if "." in path:  # the first segment was checked; a later one may be misspelt
            print(
                f"streambridge: warning: Metadata Field Exclusion {path!r} removed nothing from "
                f"any of the {result.batches} batch(es): check its spelling",
                file=sys.stderr,
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
        print(
            f"streambridge: stopped by {stopped.name} before the end of the input{where}; what "
            f"was read was delivered or is counted above",
            file=sys.stderr,
        )
        return 128 + stopped.signal
    return EXIT_FAILED if (result.failed or result.rejected or unreadable) else EXIT_OK


def _open(
    args: argparse.Namespace, settings: ForwarderSettings, dead_path: str | None
) -> tuple[Any, DeadLetterTarget | None, Resume | None]:
    """The input (None with --replay), the dead letters, the checkpoints; all or none."""
    source = None if args.replay is not None else open_input(args.input)
    letters = None
    try:
        letters = open_dead_letters(dead_path, args)
        return source, letters, _resume(args, settings, source)
    except UsageError:
        if source is not None and source is not sys.stdin.buffer:
            source.close()
        if letters is not None:
            letters.close()
        raise


def _check_usage(args: argparse.Namespace, dead_path: str | None) -> None:
    if args.flush_interval < 0:
        raise UsageError("--flush-interval must be 0 (never) or more seconds")
    if args.replay is not None and args.input != "-":
        raise UsageError("--replay reads a dead-letter file: give no input file with it")
    if args.replay is not None and dead_path is not None and _same_file(args.replay, dead_path):
        raise UsageError("--dead-letter must be another file than the one --replay reads")


def _resume(args: argparse.Namespace, settings: ForwarderSettings, source: Any) -> Resume | None:
    """``--checkpoints``: the input skipped past its settled lines; None without it."""
    if args.checkpoints is None:
        return None
    if args.checkpoint_every < 1:
        raise UsageError("--checkpoint-every must be at least 1")
    if args.replay is not None or source is None or args.input == "-":
        raise UsageError("--checkpoints needs an input file (not stdin, not --replay)")
    if not Path(args.input).is_file():
        raise UsageError("--checkpoints needs a regular file: a pipe cannot be read again")
    if settings.wait_for_complete_batch:
        raise UsageError(
            "--checkpoints cannot be used with Wait for Complete Batch: held sessions are in "
            "no checkpoint"
        )
    start = source.peek(64)[:64].lstrip(b" \t\r\n\xef\xbb\xbf")[:1]
    if start == b"[":
        raise UsageError("--checkpoints needs JSON lines (a batch a line), not a JSON array")
    return Resume(args.checkpoints, source, args.input)


def _checkpointed(
    batches: Iterator[object],
    resume: Resume,
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


def _report(
    args: argparse.Namespace,
    result: ForwardResult,
    unreadable: list[str],
    shifts: list[tuple[int, int]] | None,
    dead_path: str | None,
    letters: DeadLetterTarget | None,
) -> None:
    """The summary (stdout), then what went wrong, by input line where there are lines."""
    if not args.quiet:
        print(_forward_summary(result, unreadable))
    for line in unreadable[:5]:
        print(f"  unreadable input: {line}", file=sys.stderr)
    for rejected in result.rejected[:5]:
        number = line_of(rejected.index, shifts) if shifts is not None else None
        at = f"at line {number}" if number is not None else f"{rejected.index} (0-based)"
        print(f"  rejected batch {at}: {rejected.reason}", file=sys.stderr)
    if result.failed:
        unwritten = letters.unwritten if letters is not None else 0
        if dead_path is None:
            where = " (keep them: --dead-letter)"
        elif unwritten >= len(result.failed):
            where = f"; NOT written to {str(dead_path)!r}"
        elif unwritten:
            written = len(result.failed) - unwritten
            where = f"; {written} written to {str(dead_path)!r}, {unwritten} NOT written"
        else:
            where = f"; written to {str(dead_path)!r}"
        print(f"  {len(result.failed)} record(s) not delivered{where}", file=sys.stderr)


def _undelivered_failure(
    exc: DeliveryError,
    letters: DeadLetterTarget | None,
    dead_path: str | None,
    stopped_signal: int | None = None,
    reached: list[str] | None = None,
) -> BaseException:
    """The one-line failure for an error that carries undelivered records (dead-lettered)."""
    count = len(exc.undelivered)
    cause = exc.__cause__
    message = str(cause) if isinstance(cause, (UsageError, StopNowError)) else str(exc)
    if reached:
        message += f"; the input was read up to {reached[-1]}, what follows was not read"
    if count and letters is not None:
        try:
            letters.write_undelivered(exc.undelivered, exc.error_code or "NotDelivered", str(exc))
        except DeadLetterError:
            message += (
                f" ({count} record(s) not delivered, and NOT written to {str(dead_path)!r}: "
                f"{letters.last_error}; send the input again)"
            )
            return FailedError(message, EXIT_DEAD_LETTER)
        message += f" ({count} record(s) not delivered, written to {str(dead_path)!r})"
        if letters.unwritten:
            message += f"; {letters.unwritten} failed record(s) before could NOT be written"
            return FailedError(message, EXIT_DEAD_LETTER)
    elif count:
        message += f" ({count} record(s) not delivered; --dead-letter FILE keeps them)"
    if isinstance(exc, ForwardAbortedError) and isinstance(cause, UsageError):
        return FailedError(message, EXIT_USAGE)
    if isinstance(exc, ForwardAbortedError) and isinstance(cause, StopNowError):
        return FailedError(message, 128 + (stopped_signal or signal.SIGINT))
    if isinstance(exc, ForwardAbortedError):
        return FailedError(message, EXIT_FAILED)
    return FailedError(message, EXIT_AWS)


@attrs.frozen
class _Kept:
    """A dead letter for what never became a record: an input line, a malformed event."""

    kind: str
    fields: dict[str, Any]
    data: bytes
    record_is_json: bool = False

    def dead_letter_fields(self) -> dict[str, Any]:
        return {"kind": self.kind, **self.fields}


def _keeper(letters: DeadLetterTarget, kind: str) -> Callable[[int, str, bytes], None]:
    """Keep an unreadable input line (number, reason, bytes) as a dead letter."""

    def keep(number: int, reason: str, raw: bytes) -> None:
        with contextlib.suppress(DeadLetterError):  # counted in unwritten: exit 5 at the end
            letters.write([_Kept(kind, {"line": number, "reason": reason}, raw)])

    return keep


def _drop_keeper(
    letters: DeadLetterTarget, shifts: list[tuple[int, int]] | None
) -> Callable[[DroppedEvent], None]:
    """Keep a malformed event as a dead letter, with its input line."""

    def keep(drop: DroppedEvent) -> None:
        line = line_of(drop.batch, shifts) if shifts is not None else None
        fields = {"line": line, "batch": drop.batch, "position": drop.position}
        letters.write(
            [_Kept("dropped", {**fields, "reason": drop.reason}, drop.data, record_is_json=True)]
        )

    return keep


def _same_file(one: Path, other: str) -> bool:
    return not is_remote_target(other) and one.resolve() == Path(other).resolve()


def _replayed(path: Path, stopped: Stop, torn: Unreadable) -> Iterator[bytes]:
    """The records of a forwarder dead-letter file (importer lines are refused).

    A line that is not JSON — cut short by a crash or a full disk — is noted in ``torn`` (by
    its number) and left in the file; the whole lines around it are sent. A file with no
    dead-letter line at all is refused.
    """
    taken = 0
    try:
        letters = read_dead_letters(
            path,
            on_torn=lambda n, why: torn.append(
                f"line {n} is not a dead-letter line ({why}); it stays in the file"
            ),
        )
        for number, letter in enumerate(letters, start=1):
            if stopped.signal is not None:
                return
            taken += 1  # a dead letter, if not one to send
            if letter.kind in ("unreadable", "dropped"):  # never a record: nothing to send
                torn.append(f"entry {number} is an input {_NOT_SENT[letter.kind]}; not sent")
                continue
            if letter.kind != "failed":
                raise UsageError(
                    f"{str(path)!r} entry {number} is an importer dead letter ({letter.kind}); "
                    f"only the forwarder's can be replayed"
                )
            yield letter.data
    except OSError as exc:
        raise UsageError(f"cannot read {str(path)!r}: {exc.strerror}") from None
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if torn and not taken:
        raise UsageError(f"{str(path)!r} is not a dead-letter file: {torn[0]}")


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
_NOT_SENT = {"unreadable": "line that was not a batch", "dropped": "event that was malformed"}
_REGION_KEYS = {"aws region endpoint", "region"}


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
