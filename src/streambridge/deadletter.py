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

import base64
import contextlib
import json
import os
import threading
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

import attrs
from typing_extensions import Self

__all__ = [
    "DeadLetter",
    "DeadLetterFile",
    "Letter",
    "dead_letter_line",
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


def dead_letter_line(item: Letter) -> bytes:
    """One dead-letter line (with its newline), strict UTF-8 JSON."""
    line = {**item.dead_letter_fields(), **_data_fields(item.data, parse=item.record_is_json)}
    try:
        return (json.dumps(line, ensure_ascii=False) + "\n").encode("utf-8")
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
            "attempts": 0,
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


def read_dead_letters(path: str | os.PathLike[str]) -> Iterator[DeadLetter]:
    """Read a dead-letter file, line by line.

    Raises:
        ValueError: A line is not a dead-letter line (the message gives its number).
    """
    with Path(path).open("rb") as stream:
        for number, raw in enumerate(stream, start=1):
            if not raw.strip():
                continue
            try:
                line = json.loads(raw)
                if "data_base64" in line:
                    data = base64.b64decode(line["data_base64"], validate=True)
                else:
                    data = str(line["data"]).encode("utf-8", "surrogatepass")
                kind = str(line["kind"])
            except (ValueError, KeyError, TypeError) as exc:
                msg = f"{os.fspath(path)!r} line {number} is not a dead-letter line: {exc}"
                raise ValueError(msg) from None
            reason = (
                f"{line.get('error_code')}: {line.get('error_message')}"
                if kind == "failed"
                else str(line.get("reason"))
            )
            yield DeadLetter(kind, data, reason)


class DeadLetterFile:
    """Append dead letters to a file: a callable for ``on_failure`` and ``on_skip``.

    Each line is flushed as it is written (and forced to disk with ``fsync=True``), so a
    crash loses none that were reported. Thread-safe. Use as a context manager, or
    :meth:`close` it.

    Attributes:
        path: The file.
        written: Lines written so far.
    """

    def __init__(self, path: str | os.PathLike[str], *, fsync: bool = False) -> None:
        """Open ``path`` for appending (created if need be)."""
        self.path = Path(path)
        self.fsync = fsync
        self.written = 0
        self._stream = self.path.open("ab")
        self._lock = threading.Lock()

    def __call__(self, item: Letter) -> None:
        """Write one failed or skipped record."""
        self.write_lines([dead_letter_line(item)])

    def write_undelivered(self, records: Iterable[bytes], code: str, message: str) -> int:
        """Write records a forwarder error carried (``DeliveryError.undelivered``).

        Returns:
            How many were written.
        """
        lines = [dead_letter_line(_Undelivered(data, code, message)) for data in records]
        self.write_lines(lines)
        return len(lines)

    def write_lines(self, lines: list[bytes]) -> None:
        """Write ready-made lines, then flush (and fsync)."""
        with self._lock:
            self._stream.write(b"".join(lines))
            self._stream.flush()
            if self.fsync:
                os.fsync(self._stream.fileno())
            self.written += len(lines)

    def close(self) -> None:
        """Close the file."""
        self._stream.close()

    def __enter__(self) -> Self:
        """Return self."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Close the file."""
        self.close()
