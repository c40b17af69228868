"""``streambridge forward``: mParticle batches (JSON lines or a JSON array) to Firehose."""

from __future__ import annotations

import argparse
import bisect
import json
import os
import select
import signal
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from streambridge._settings import normalise
from streambridge.cli._common import (
    EXIT_AWS,
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
    on_signals,
    open_dead_letters,
    read_json_object,
    restore_signals,
    retry_policy,
)
from streambridge.deadletter import DeadLetterFile, read_dead_letters
from streambridge.errors import DeliveryError, ForwardAbortedError
from streambridge.forwarder import FLUSH, ForwarderSettings, ForwardResult
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
    forward.add_argument(
        "--put-mode",
        choices=["auto", "batch", "single"],
        default="auto",
        help="auto (default): PutRecordBatch, and PutRecord once that is denied; batch: "
        "PutRecordBatch only; single: one PutRecord per record",
    )
    forward.add_argument(
        "--newline",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="end every record with a newline, so S3 objects are JSON lines (default); "
        "--no-newline keeps mParticle's framing byte for byte",
    )
    forward.add_argument(
        "--dead-letter",
        type=Path,
        help="append every record not delivered here, with the reason, as JSON lines",
    )
    forward.add_argument(
        "--flush-interval",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="a live input (a pipe) that is quiet this long has what it gave sent at once, "
        "instead of waiting for 500 records or 4 MB (default 5; 0: never)",
    )
    forward.add_argument("--failed-out", type=Path, help=argparse.SUPPRESS)  # the old name
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
    unreadable: list[str] = []
    reached: list[str] = []  # where the input was read to: "line N" / "array item N"
    shifts: list[tuple[int, int]] | None = [] if args.replay is None else None
    dead_path: Path | None = args.dead_letter or args.failed_out
    if args.flush_interval < 0:
        raise UsageError("--flush-interval must be 0 (never) or more seconds")
    if args.replay is not None and args.input != "-":
        raise UsageError("--replay reads a dead-letter file: give no input file with it")
    if args.replay is not None and dead_path is not None and _same_file(args.replay, dead_path):
        raise UsageError("--dead-letter must be another file than the one --replay reads")
    client = aws_client(args, "firehose", keys=(settings.access_key_id, settings.secret_access_key))
    source = None if args.replay is not None else _open_input(args.input)
    try:
        letters = open_dead_letters(dead_path)
    except UsageError:
        if source is not None and source is not sys.stdin:
            source.close()
        raise
    retry = retry_policy(args)
    forwarder = FirehoseForwarder(
        client,
        settings,
        put_mode=args.put_mode,
        record_delimiter=b"\n" if args.newline else b"",
        on_failure=letters,
        retry=retry or RetryPolicy(),
    )
    progress = Progress(enabled=not args.quiet)
    stopped = Stop(again_interrupts=True)
    previous = on_signals(stopped.set)
    try:
        if args.replay is not None:
            result = forwarder.send(_replayed(args.replay, stopped))
        else:
            assert source is not None  # noqa: S101 - opened above
            batches = _read_batches(
                source, args.input, unreadable, progress, stopped, reached, args.flush_interval,
                shifts,
            )  # fmt: skip
            result = forwarder.forward_many(batches) + forwarder.flush()
    except DeliveryError as exc:
        raise _undelivered_failure(exc, letters, dead_path, stopped.signal, reached) from exc
    finally:
        progress.done()
        restore_signals(previous)
        if letters is not None:
            letters.close()
    _report(args, result, unreadable, shifts, dead_path)
    if stopped.signal is not None:
        where = f" (read up to {reached[-1]})" if reached else ""
        print(
            f"streambridge: stopped by {stopped.name} before the end of the input{where}; what "
            f"was read was delivered or is counted above",
            file=sys.stderr,
        )
        return 128 + stopped.signal
    return EXIT_FAILED if (result.failed or result.rejected or unreadable) else EXIT_OK


def _report(
    args: argparse.Namespace,
    result: ForwardResult,
    unreadable: list[str],
    shifts: list[tuple[int, int]] | None,
    dead_path: Path | None,
) -> None:
    """The summary (stdout), then what went wrong, by input line where there are lines."""
    if not args.quiet:
        print(_forward_summary(result, unreadable))
    for line in unreadable[:5]:
        print(f"  unreadable input: {line}", file=sys.stderr)
    for rejected in result.rejected[:5]:
        number = _line_of(rejected.index, shifts) if shifts is not None else None
        at = f"at line {number}" if number is not None else f"{rejected.index} (0-based)"
        print(f"  rejected batch {at}: {rejected.reason}", file=sys.stderr)
    if result.failed:
        where = f"; written to {str(dead_path)!r}" if dead_path else " (keep them: --dead-letter)"
        print(f"  {len(result.failed)} record(s) not delivered{where}", file=sys.stderr)


def _undelivered_failure(
    exc: DeliveryError,
    letters: DeadLetterFile | None,
    dead_path: Path | None,
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
        letters.write_undelivered(exc.undelivered, exc.error_code or "NotDelivered", str(exc))
        message += f" ({count} record(s) not delivered, written to {str(dead_path)!r})"
    elif count:
        message += f" ({count} record(s) not delivered; --dead-letter FILE keeps them)"
    if isinstance(exc, ForwardAbortedError) and isinstance(cause, UsageError):
        return FailedError(message, EXIT_USAGE)
    if isinstance(exc, ForwardAbortedError) and isinstance(cause, StopNowError):
        return FailedError(message, 128 + (stopped_signal or signal.SIGINT))
    if isinstance(exc, ForwardAbortedError):
        return FailedError(message, EXIT_FAILED)
    return FailedError(message, EXIT_AWS)


def _same_file(one: Path, other: Path) -> bool:
    return one.resolve() == other.resolve()


def _replayed(path: Path, stopped: Stop) -> Iterator[bytes]:
    """The records of a forwarder dead-letter file (importer lines are refused)."""
    try:
        for number, letter in enumerate(read_dead_letters(path), start=1):
            if stopped.signal is not None:
                return
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


def _open_input(name: str) -> IO[bytes]:
    if name == "-":
        return sys.stdin.buffer
    try:
        return Path(name).open("rb")
    except OSError as exc:
        raise UsageError(f"cannot read {name!r}: {exc.strerror}") from None


def _read_batches(
    stream: IO[bytes],
    name: str,
    unreadable: list[str],
    progress: Progress,
    stopped: Stop,
    reached: list[str] | None = None,
    flush_after: float = 0.0,
    shifts: list[tuple[int, int]] | None = None,
) -> Iterator[object]:
    """Batches from JSON lines, one JSON document or a JSON array (detected, not guessed).

    JSON lines are streamed; a line that is not UTF-8 or not JSON is noted by its number and
    the rest goes on. Input whose first line starts an object that only the following lines
    complete is one (pretty-printed) document. A live input (a pipe, a terminal) that stays
    quiet for ``flush_after`` seconds yields :data:`FLUSH`, so what was read goes out.
    """
    try:
        live = flush_after > 0 and not _regular(stream)
        if not live and _peek(stream) == b"[":
            _not_lines(shifts)
            yield from _array(stream.read(), name, progress, stopped)
            return
        lines: Iterator[bytes | None] = _live_lines(stream, flush_after) if live else iter(stream)
        number, held = 0, False
        for raw in lines:
            if raw is None:  # quiet for flush_after seconds
                if held:
                    yield FLUSH
                held = False
                continue
            number += 1
            if stopped.signal is not None:
                return
            if not raw.strip():
                continue
            if live and not progress.count and raw.lstrip(_SPACE).startswith(b"["):
                _not_lines(shifts)
                rest = b"".join(r for r in lines if r is not None)
                yield from _array(raw + rest, name, progress, stopped)
                return
            text = _text(raw, number, unreadable)
            if text is None:
                continue
            try:
                item = json.loads(text)
            except ValueError as exc:
                if text.lstrip().startswith("{") and not progress.count:
                    yield from _one_document(number, text, lines, unreadable, progress, shifts)
                    return
                unreadable.append(f"line {number}: not JSON ({exc})")
                continue
            progress.tick()
            _note(reached, f"line {number}")
            _shift(shifts, progress.count - 1, number)
            held = True
            yield item
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()


_SPACE = b" \t\r\n\xef\xbb\xbf"


def _regular(stream: IO[bytes]) -> bool:
    """Whether the input is a regular file (read at full speed) rather than a live input."""
    try:
        return stat.S_ISREG(os.fstat(stream.fileno()).st_mode)
    except (OSError, ValueError, AttributeError):  # no descriptor (a test's stand-in)
        return True


def _live_lines(stream: IO[bytes], quiet: float) -> Iterator[bytes | None]:
    """Lines of a pipe as they come; None each time nothing came for ``quiet`` seconds."""
    fd, pending = stream.fileno(), b""
    while True:
        ready, _, _ = select.select([fd], [], [], quiet)
        if not ready:
            yield None
            continue
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            if pending:
                yield pending
            return
        *complete, pending = (pending + chunk).split(b"\n")
        for line in complete:
            yield line + b"\n"


def _shift(shifts: list[tuple[int, int]] | None, index: int, line: int) -> None:
    """Note where batch ``index`` (0-based) is, when blank or unreadable lines moved it.

    Batch ``i`` is on line ``i + 1 + shift``; the shift changes only at lines that are no
    batch, so this list stays as short as they are few (memory does not grow with the input).
    """
    if shifts is None:
        return
    shift = line - index - 1
    if shift != (shifts[-1][1] if shifts else 0):
        shifts.append((index, shift))


def _line_of(index: int, shifts: list[tuple[int, int]]) -> int | None:
    """The input line of batch ``index`` (None: the input was one document or an array)."""
    if shifts and shifts[0] == (-1, -1):
        return None
    at = bisect.bisect_right(shifts, (index, float("inf"))) - 1
    return index + 1 + (shifts[at][1] if at >= 0 else 0)


def _note(reached: list[str] | None, where: str) -> None:
    if reached is not None:
        reached[:] = [where]


def _text(raw: bytes, number: int, unreadable: list[str]) -> str | None:
    """A line as text; None (and a note) when it is not UTF-8."""
    try:
        return raw.decode("utf-8-sig" if number == 1 else "utf-8")
    except UnicodeDecodeError as exc:
        unreadable.append(
            f"line {number}: not UTF-8 (byte {raw[exc.start]:#04x} at column {exc.start + 1})"
        )
        return None


def _array(data: bytes, name: str, progress: Progress, stopped: Stop) -> Iterator[object]:
    try:
        items = json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise UsageError(f"{name!r} is a JSON array that is not UTF-8 text ({exc})") from None
    except ValueError as exc:
        raise UsageError(f"{name!r} starts with '[' but is not a JSON array: {exc}") from None
    for item in items if isinstance(items, list) else [items]:
        if stopped.signal is not None:
            return
        progress.tick()
        yield item


def _one_document(
    number: int,
    text: str,
    lines: Iterator[bytes | None],
    unreadable: list[str],
    progress: Progress,
    shifts: list[tuple[int, int]] | None = None,
) -> Iterator[object]:
    """The first line opens a document the next lines complete; else go on line by line."""
    rest = [raw for raw in lines if raw is not None]
    whole = "".join([text, *(raw.decode("utf-8", "replace") for raw in rest)])
    try:
        item = json.loads(whole)
    except ValueError:
        item = None
    if isinstance(item, dict) and "\ufffd" not in whole:
        _not_lines(shifts)
        progress.tick()
        yield item
        return
    unreadable.append(f"line {number}: not JSON (and the input is not one JSON document)")
    for later, raw in enumerate(rest, start=number + 1):  # JSON lines after all
        if not raw.strip():
            continue
        line = _text(raw, later, unreadable)
        if line is None:
            continue
        try:
            value = json.loads(line)
        except ValueError as exc:
            unreadable.append(f"line {later}: not JSON ({exc})")
            continue
        progress.tick()
        _shift(shifts, progress.count - 1, later)
        yield value


def _not_lines(shifts: list[tuple[int, int]] | None) -> None:
    """The input is one document or an array: its batches have no lines of their own."""
    if shifts is not None:
        shifts[:] = [(-1, -1)]


def _peek(stream: IO[bytes]) -> bytes:
    """The first non-space byte, leaving the stream able to read it again."""
    if hasattr(stream, "peek"):
        head = bytes(stream.peek(64)[:64]).lstrip(b" \t\r\n\xef\xbb\xbf")
        if head:
            return head[:1]
    if stream.seekable():
        position = stream.tell()
        head = stream.read(64).lstrip(b" \t\r\n\xef\xbb\xbf")
        stream.seek(position)
        return head[:1]
    return b""


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
