"""Dead letters: what could not be delivered, with the reason, as JSON lines.

Pass a :class:`DeadLetterFile` as the forwarder's ``on_failure`` and the importer's
``on_skip``: each :class:`~streambridge.FailedRecord` and :class:`~streambridge.SkippedRecord`
becomes one line. A line is strict UTF-8 JSON whatever the record held (bytes that are not
UTF-8 are written as base64), and it holds the record's exact bytes, so the forwarder's can be
sent again (:func:`read_dead_letters`, ``streambridge forward --replay FILE``).

A forwarder line::

    {"kind": "failed", "error_code": "ServiceUnavailableException", "error_message": "…",
     "attempts": 10, "record": {…the record, parsed…}, "data": "…the record's exact text…"}

An importer line::

    {"kind": "skipped", "shard_id": "shardId-000000000001", "sequence_number": "4959…",
     "position": 0, "reason": "not JSON: …", "data": "…"}

``data_base64`` replaces ``data`` when the bytes are not UTF-8 text; ``record`` is left out
when the data is not JSON (or holds a lone surrogate, which strict UTF-8 cannot write).
"""

from __future__ import annotations

import abc
import base64
import contextlib
import json
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import attrs

from streambridge._files import ShortWriteError, is_regular, open_private, write_all
from streambridge._util import call_safely
from streambridge.errors import DeadLetterError

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = [
    "DeadLetter",
    "DeadLetterFile",
    "DeadLetterTarget",
    "Letter",
    "dead_letter_line",
    "hand_back",
    "hand_back_said",
    "read_dead_letters",
]


class Letter(Protocol):
    """What a dead letter is made of: a forwarder's FailedRecord, an importer's SkippedRecord."""

    @property
    def data(self) -> bytes:
        """The record's exact bytes."""

    @property
    def record_is_json(self) -> bool:
        """Whether the data is JSON worth decoding into the line (``record``)."""

    def dead_letter_fields(self) -> Mapping[str, Any]:
        """``kind`` and the fields saying why, for the line."""


def _data_fields(data: bytes, *, parse: bool) -> dict[str, Any]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return {"data_base64": base64.b64encode(data).decode("ascii")}
    fields: dict[str, Any] = {}
    if parse:
        with contextlib.suppress(ValueError, RecursionError):
            fields["record"] = json.loads(text)
    fields["data"] = text
    return fields


def dead_letter_line(item: Letter, *, ascii_only: bool = False) -> bytes:
    """One dead-letter line (with its newline), strict UTF-8 JSON (``ascii_only``: ASCII)."""
    line = {**item.dead_letter_fields(), **_data_fields(item.data, parse=item.record_is_json)}
    try:
        return (json.dumps(line, ensure_ascii=ascii_only) + "\n").encode("utf-8")
    except (UnicodeEncodeError, RecursionError, ValueError):
        line.pop("record", None)  # a lone surrogate, or too deep: the exact text stays
        return (json.dumps(line) + "\n").encode("ascii")


@attrs.frozen
class _Undelivered:
    """A record a forwarder error carried (``DeliveryError.undelivered``), never sent."""

    data: bytes
    code: str
    message: str
    record_is_json = True

    def dead_letter_fields(self) -> dict[str, Any]:
        """A forwarder line, as FailedRecord writes it, for a record never sent."""
        return {
            "kind": "failed",
            "error_code": self.code,
            "error_message": self.message,
            "attempts": None,  # unknown: in flight when the run stopped, or never sent
        }


@attrs.frozen
class DeadLetter:
    """One line of a dead-letter file, read back.

    Attributes:
        kind: ``"failed"`` (the forwarder's) or ``"skipped"`` (the importer's).
        data: The record's exact bytes.
        reason: The error code and message, or the skip reason.
    """

    kind: str
    data: bytes = attrs.field(repr=lambda data: f"<{len(data)} bytes>")
    reason: str


def read_dead_letters(
    path: str | os.PathLike[str], *, on_torn: Callable[[int, str], object] | None = None
) -> Iterator[DeadLetter]:
    """Read a dead-letter file, line by line.

    Args:
        path: The file.
        on_torn: Called with the line number and what is wrong for each line that is not
            JSON (a line cut short by a crash or a full disk), and reading goes on; without
            it, such a line raises ValueError.

    Raises:
        ValueError: A line is not a dead-letter line (the message gives its number and why).
    """
    with open(path, "rb") as stream:  # noqa: PTH123 - pathlib off a Lambda's cold path
        for number, raw in enumerate(stream, start=1):
            if not raw.strip():
                continue
            try:
                line = json.loads(raw)
            except ValueError as exc:
                cut = "" if raw.endswith(b"\n") else ", cut short (no newline)"
                why = f"not JSON{cut}: {exc}"
                if on_torn is None:
                    msg = f"{os.fspath(path)!r} line {number} is not a dead-letter line: {why}"
                    raise ValueError(msg) from None
                on_torn(number, why)
                continue
            yield _letter(line, number, path)


def _letter(line: object, number: int, path: str | os.PathLike[str]) -> DeadLetter:
    """One parsed line as a DeadLetter, or ValueError saying what it lacks."""
    where = f"{os.fspath(path)!r} line {number} is not a dead-letter line"
    if not isinstance(line, dict):
        msg = f"{where}: it is a JSON {type(line).__name__}, not an object"
        raise ValueError(msg)  # noqa: TRY004 - a bad file is a ValueError to the caller
    missing = [key for key in ("kind",) if key not in line]
    if "data" not in line and "data_base64" not in line:
        missing.append("data")
    if missing:
        msg = f"{where}: it has no {' or '.join(repr(k) for k in missing)}"
        raise ValueError(msg)
    try:
        if "data_base64" in line:
            data = base64.b64decode(line["data_base64"], validate=True)
        else:
            data = str(line["data"]).encode("utf-8", "surrogatepass")
    except (ValueError, TypeError) as exc:
        msg = f"{where}: its data cannot be read ({exc})"
        raise ValueError(msg) from None
    kind = str(line["kind"])
    reason = (
        f"{line.get('error_code')}: {line.get('error_message')}"
        if kind == "failed"
        else str(line.get("reason"))
    )
    return DeadLetter(kind, data, reason)


class DeadLetterTarget(abc.ABC):
    """Where dead letters go: a file, an S3 prefix, an SQS queue.

    :meth:`write` writes every letter or raises :class:`~streambridge.errors.DeadLetterError`,
    which streambridge never swallows: a letter not written is not handed back. A target is
    a callable too, for ``on_skip`` and ``on_failure``; the importer, the KCL processor and the
    Lambda handler give it a whole call's letters at once. Thread-safe.

    Attributes:
        written: Letters written so far.
        unwritten: Letters that could not be written (each write raised DeadLetterError).
        last_error: Why the last of those could not be written, or None.
    """

    #: Where the letters go, for messages (a path, ``s3://bucket/prefix``, a queue URL).
    target: str = ""

    def __init__(self) -> None:
        """Nothing written yet."""
        self.written = 0
        self.unwritten = 0
        self.last_error: str | None = None
        self._lock = threading.Lock()

    def __call__(self, item: Letter) -> None:
        """Write one letter (for ``on_skip`` and ``on_failure``)."""
        self.write([item])

    def write(self, items: Sequence[Letter]) -> None:
        """Write the letters, all of them, or raise DeadLetterError."""
        self.write_lines([self.line(item) for item in items])

    def write_undelivered(self, records: Iterable[bytes], code: str, message: str) -> int:
        """Write records a forwarder error carried (``DeliveryError.undelivered``).

        Returns:
            How many were written.
        """
        lines = [self.line(_Undelivered(data, code, message)) for data in records]
        self.write_lines(lines)
        return len(lines)

    def line(self, item: Letter) -> bytes:
        """The letter as this target writes it (one JSON line)."""
        return dead_letter_line(item)

    def write_lines(self, lines: list[bytes]) -> None:
        """Write ready-made lines, or raise DeadLetterError (counted in ``unwritten``)."""
        if not lines:
            return
        with self._lock:
            try:
                self._send(lines)
            except DeadLetterError as exc:
                self.unwritten += len(lines)
                self.last_error = exc.why
                raise
            self.written += len(lines)

    @abc.abstractmethod
    def _send(self, lines: list[bytes]) -> None:
        """Write every line, or raise DeadLetterError (:meth:`_refused`); under the lock."""

    def _refused(self, count: int, why: str) -> DeadLetterError:
        error = DeadLetterError(
            f"cannot write {count} dead letter(s) to {self.target!r}: {why}",
            unwritten=count,
            target=self.target,
        )
        error.why = why
        return error

    def close(self) -> None:  # noqa: B027 - a remote target holds nothing
        """Release what the target holds."""

    def __enter__(self) -> Self:
        """Return self."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Close the target."""
        self.close()


class DeadLetterFile(DeadLetterTarget):
    """Append dead letters to a file: a callable for ``on_failure`` and ``on_skip``.

    The file is created ``0600`` (it holds whole records; an existing file keeps its mode).
    Each write is whole or raises :class:`~streambridge.errors.DeadLetterError` (a full disk,
    a closed pipe): a write cut part way is taken back where the file allows it, and the next
    line starts on a line of its own, so a reader never sees two letters run together. With
    ``fsync=True`` each write is forced to disk before it returns. Thread-safe; several
    processes may append to one file. Use as a context manager, or :meth:`close` it.

    Attributes:
        path: The file.
    """

    def __init__(self, path: str | os.PathLike[str], *, fsync: bool = False) -> None:
        """Open ``path`` for appending (created ``0600`` if need be)."""
        super().__init__()
        from pathlib import Path  # noqa: PLC0415 - off a Lambda's cold path

        self.path = Path(path)
        self.target = os.fspath(path)
        self.fsync = fsync
        self._fd: int | None = open_private(self.path, append=True, read=True)
        self._regular = is_regular(self._fd)

    def _send(self, lines: list[bytes]) -> None:
        if self._fd is None:
            raise self._refused(len(lines), "the file is closed")
        data, fd = b"".join(lines), self._fd
        start = os.fstat(fd).st_size if self._regular else 0
        try:
            if self._regular and start and os.pread(fd, 1, start - 1) != b"\n":
                data = b"\n" + data  # after a cut write: a line of its own
            write_all(fd, data)
            if self.fsync:
                os.fsync(fd)
        except ShortWriteError as exc:
            if exc.written and self._regular:
                self._take_back(fd, start, exc.written)
            raise self._refused(len(lines), exc.strerror or str(exc)) from None
        except OSError as exc:
            raise self._refused(len(lines), exc.strerror or str(exc)) from None

    @staticmethod
    def _take_back(fd: int, start: int, written: int) -> None:
        """Cut a partial write off again, if nobody appended after it."""
        with contextlib.suppress(OSError):
            if os.fstat(fd).st_size == start + written:
                os.ftruncate(fd, start)

    def close(self) -> None:
        """Close the file (again: nothing)."""
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


def hand_back(
    callback: Callable[[Any], object] | None, items: list[Any], logger: Any, message: str
) -> None:
    """Give each of ``items`` to ``callback`` (``on_skip``, ``on_failure``).

    A user callback's exceptions are logged (``message``) and ignored; a
    :class:`DeadLetterTarget` writes the whole list in one go and its
    :class:`~streambridge.errors.DeadLetterError` is raised.
    """
    if callback is None or not items:
        return
    if isinstance(callback, DeadLetterTarget):
        callback.write(items)
        return
    for item in items:
        call_safely(callback, item, logger, message)


def hand_back_said(
    callback: Callable[[Any], object] | None, items: list[Any], logger: Any, message: str
) -> None:
    """:func:`hand_back`, where a letter not written is said (logged), not raised.

    For records the caller keeps anyway (the forwarder's ``ForwardResult.failed``): the target
    counts them in ``unwritten``, and the command line fails on that.
    """
    try:
        hand_back(callback, items, logger, message)
    except DeadLetterError as exc:
        logger.error("%s", exc)  # noqa: TRY400 - the message says it all
