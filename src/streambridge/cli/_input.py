"""``streambridge forward``'s input: JSON lines, one document or an array, detected.

Read as bytes, so that a line that is not UTF-8 is one rejected line, not the end of the
file; live inputs (pipes, terminals) are read as they come, with :data:`FLUSH` when they go
quiet; where each batch came from is kept in as little memory as the odd lines need.
"""

from __future__ import annotations

import bisect
import json
import os
import select
import stat
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING

from streambridge._json import loads
from streambridge.cli._common import Stop, UsageError
from streambridge.cli._progress import Progress
from streambridge.forwarder import FLUSH

if TYPE_CHECKING:
    from streambridge.cli._resume import Resume

__all__ = [
    "Places",
    "Unreadable",
    "UnreadableRestError",
    "is_regular",
    "line_of",
    "open_input",
    "read_batches",
    "read_objects",
]


class Unreadable(list[str]):
    """The input lines that are no batch, as notes ("line 7: not JSON (…)"), in order.

    With ``keep``, each line's bytes are handed to it too (``--dead-letter`` keeps them).
    """

    def __init__(self, keep: Callable[[int, str, bytes], None] | None = None) -> None:
        super().__init__()
        self.keep = keep
        self.source = ""  # the S3 object being read ("s3://bucket/key "), else empty

    def note(self, number: int, reason: str, raw: bytes | None = None) -> None:
        self.append(f"{self.source}line {number}: {reason}")
        if self.keep is not None and raw is not None:
            self.keep(number, reason, raw.rstrip(b"\r\n"))


class Places:
    """Where each batch came from: its line (and S3 object), in as little memory as can be.

    Attributes:
        shifts: Where blank or unreadable lines (or a new object) moved the batches' lines.
    """

    def __init__(self) -> None:
        self.shifts: list[tuple[int, int]] = []
        self._starts: list[int] = []  # the first batch index of each S3 object
        self._objects: list[str] = []

    def start(self, index: int, source: str) -> None:
        """Batches from ``index`` on come from the object ``source``."""
        if self._starts and self._starts[-1] == index:  # the last object held no batch
            self._objects[-1] = source
            return
        self._starts.append(index)
        self._objects.append(source)

    def line(self, index: int) -> int | None:
        """The line of batch ``index`` (in its object); None for one document or an array."""
        return line_of(index, self.shifts)

    def source(self, index: int) -> str | None:
        """The S3 object batch ``index`` came from (None: a local input)."""
        at = bisect.bisect_right(self._starts, index) - 1
        return self._objects[at] if at >= 0 else None

    def describe(self, index: int) -> str | None:
        """``line 7`` or ``s3://bucket/key line 7``; None when the batch has no line."""
        line = self.line(index)
        if line is None:
            return None
        source = self.source(index)
        return f"{source} line {line}" if source is not None else f"line {line}"


def open_input(name: str) -> IO[bytes]:
    if name == "-":
        return sys.stdin.buffer
    try:
        return Path(name).open("rb")
    except OSError as exc:
        raise UsageError(f"cannot read {name!r}: {exc.strerror}") from None


def read_batches(
    stream: IO[bytes],
    name: str,
    unreadable: Unreadable,
    progress: Progress,
    stopped: Stop,
    reached: list[str] | None = None,
    flush_after: float = 0.0,
    shifts: list[tuple[int, int]] | None = None,
    resume: Resume | None = None,
) -> Iterator[object]:
    """Batches from JSON lines, one JSON document or a JSON array (detected, not guessed).

    JSON lines are streamed; a line that is not UTF-8 or not JSON is noted by its number and
    the rest goes on. Input whose first line starts an object that only the following lines
    complete is one (pretty-printed) document. A live input (a pipe, a terminal) that stays
    quiet for ``flush_after`` seconds yields :data:`FLUSH`, so what was read goes out. With
    ``resume`` (``--checkpoints``), the stream is past the lines settled before; the rest are
    counted and hashed as they are read, and numbered after them.
    """
    try:
        live = not is_regular(stream)  # a pipe or a terminal: read as it comes, signals seen
        if not live and resume is None and _peek(stream) == b"[":  # resumed: lines only
            _not_lines(shifts)
            yield from _array(stream.read(), name, progress, stopped)
            return
        lines: Iterator[bytes | None] = (
            _live_lines(stream, flush_after, stopped) if live else iter(stream)
        )
        first = 0
        if resume is not None:  # lines counted and hashed for --checkpoints, numbered on
            lines, first = resume.lines_read(iter(stream)), resume.lines
        reader = _Lines(unreadable, progress, stopped, reached, shifts)
        yield from reader.batches(lines, name, live=live, number=first)
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()


def read_objects(
    objects: Iterator[tuple[str, Iterator[bytes], int]],
    unreadable: Unreadable,
    progress: Progress,
    stopped: Stop,
    reached: list[str],
    places: Places,
) -> Iterator[object]:
    """Batches from the JSON lines of several objects: (where, lines, lines skipped) each."""
    reader = _Lines(unreadable, progress, stopped, reached, places.shifts)
    for where, lines, skipped in objects:
        unreadable.source = f"{where} "
        places.start(progress.count, where)
        counted = [skipped]
        try:
            yield from reader.batches(
                _counting(lines, counted), where, number=skipped, documents=False
            )
        except UnreadableRestError as exc:  # a cut or broken gzip stream: the rest is noted
            unreadable.note(counted[0] + 1, f"{exc}; the rest of the object cannot be read")
        if stopped.signal is not None:
            return


class UnreadableRestError(Exception):
    """What follows in an object cannot be read (its gzip stream is cut short or broken)."""


def _counting(lines: Iterator[bytes], counted: list[int]) -> Iterator[bytes]:
    for line in lines:
        counted[0] += 1
        yield line


class _Lines:
    """Batches out of input lines, and what the lines said on the way."""

    def __init__(
        self,
        unreadable: Unreadable,
        progress: Progress,
        stopped: Stop,
        reached: list[str] | None,
        shifts: list[tuple[int, int]] | None,
    ) -> None:
        self.unreadable, self.progress, self.stopped = unreadable, progress, stopped
        self.reached, self.shifts = reached, shifts

    def batches(
        self,
        lines: Iterator[bytes | None],
        name: str,
        *,
        live: bool = False,
        number: int = 0,
        documents: bool = True,
    ) -> Iterator[object]:
        """Each line's batch (None in ``lines``: a quiet spell); a document or an array whole."""
        held = False
        for raw in lines:
            if raw is None:  # quiet for flush_after seconds
                if self.stopped.signal is not None:
                    return
                if held:
                    yield FLUSH
                held = False
                continue
            number += 1
            if self.stopped.signal is not None:
                return
            if not raw.strip():
                continue
            first = documents and not self.progress.count
            if live and first and raw.lstrip(_SPACE).startswith(b"["):
                _not_lines(self.shifts)
                rest = b"".join(r for r in lines if r is not None)
                yield from _array(raw + rest, name, self.progress, self.stopped)
                return
            item = _fast(raw, number)
            if item is _SLOW:  # the standard library decides, and says why not
                text = _text(raw, number, self.unreadable)
                if text is None:
                    continue
                try:
                    item = json.loads(text)
                except ValueError as exc:
                    if first and text.lstrip().startswith("{"):
                        yield from self._document(number, text, lines, name)
                        return
                    self.unreadable.note(number, f"not JSON ({exc})", raw)
                    continue
            self.progress.tick()
            _note(self.reached, f"{self.unreadable.source}line {number}")
            _shift(self.shifts, self.progress.count - 1, number)
            held = True
            yield item

    def _document(
        self, number: int, text: str, lines: Iterator[bytes | None], name: str
    ) -> Iterator[object]:
        """The first line opens a document the next lines complete; else go on line by line."""
        rest = [raw for raw in lines if raw is not None]
        whole = "".join([text, *(raw.decode("utf-8", "replace") for raw in rest)])
        try:
            item = json.loads(whole)
        except ValueError:
            item = None
        if isinstance(item, dict) and "\ufffd" not in whole:
            _not_lines(self.shifts)
            self.progress.tick()
            yield item
            return
        self.unreadable.note(
            number, "not JSON (and the input is not one JSON document)", text.encode()
        )
        yield from self.batches(iter(rest), name, number=number, documents=False)


_SPACE = b" \t\r\n\xef\xbb\xbf"


def is_regular(stream: IO[bytes]) -> bool:
    """Whether the input is a regular file (read at full speed) rather than a live input."""
    try:
        return stat.S_ISREG(os.fstat(stream.fileno()).st_mode)
    except (OSError, ValueError, AttributeError):  # no descriptor (a test's stand-in)
        return True


#: How long a read of a live input waits before it looks at the stop flag again.
_STOP_CHECK = 0.5


def _live_lines(stream: IO[bytes], quiet: float, stopped: Stop) -> Iterator[bytes | None]:
    """Lines of a pipe as they come; None each time nothing came for ``quiet`` seconds.

    The input ends (what was read is delivered) within :data:`_STOP_CHECK` seconds of a
    SIGTERM or SIGINT, however quiet the pipe: a signal does not wait for the next line.
    ``quiet`` 0: never None.
    """
    fd, pending = stream.fileno(), b""
    last = time.monotonic()
    while stopped.signal is None:
        wait = (
            _STOP_CHECK
            if quiet <= 0
            else min(_STOP_CHECK, max(quiet - (time.monotonic() - last), 0))
        )
        ready, _, _ = select.select([fd], [], [], wait)
        if not ready:
            if quiet > 0 and time.monotonic() - last >= quiet:
                last = time.monotonic()
                yield None
            continue
        chunk = os.read(fd, 1 << 16)
        last = time.monotonic()
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


def line_of(index: int, shifts: list[tuple[int, int]]) -> int | None:
    """The input line of batch ``index`` (None: the input was one document or an array)."""
    if shifts and shifts[0] == (-1, -1):
        return None
    at = bisect.bisect_right(shifts, (index, float("inf"))) - 1
    return index + 1 + (shifts[at][1] if at >= 0 else 0)


def _note(reached: list[str] | None, where: str) -> None:
    if reached is not None:
        reached[:] = [where]


_SLOW = object()
_BOM = b"\xef\xbb\xbf"


def _fast(raw: bytes, number: int) -> object:
    """A line's JSON value by the fast decoder (orjson, with the ``fast`` extra), or ``_SLOW``.

    ``_SLOW`` for anything it does not take as is: the standard library then reads the line
    as before (its ``NaN``, its lone surrogates, its messages for what is not JSON).
    """
    try:
        return loads(raw[3:] if number == 1 and raw.startswith(_BOM) else raw)
    except (ValueError, RecursionError):
        return _SLOW


def _text(raw: bytes, number: int, unreadable: Unreadable) -> str | None:
    """A line as text; None (and a note) when it is not UTF-8."""
    try:
        return raw.decode("utf-8-sig" if number == 1 else "utf-8")
    except UnicodeDecodeError as exc:
        why = f"not UTF-8 (byte {raw[exc.start]:#04x} at column {exc.start + 1})"
        unreadable.note(number, why, raw)
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
