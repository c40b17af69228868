"""``streambridge forward --checkpoints FILE``: how far a JSON-lines file was delivered.

The file holds the input's path, how many of its lines are settled — every record of their
batches delivered, or handed to ``--dead-letter`` — and the SHA-256 of those lines. It moves
only at a :class:`~streambridge.forwarder.Settled` marker (every ``--checkpoint-every``
batches, and at the end), once every call before the marker has answered (the calls after it
go on meanwhile), and only while every dead letter was written. A rerun checks the lines it
skips against the hash (a changed input is refused, not half skipped) and goes on after
them: after a SIGKILL it sends again at most the calls that were in flight.
The file is replaced whole (written aside, synced, renamed) and created 0600.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from streambridge._files import PRIVATE_MODE, open_private, write_all
from streambridge.cli._common import UsageError
from streambridge.forwarder import Settled

__all__ = ["Resume", "load_state", "save_state"]

_VERSION = 1


class Resume:
    """The checkpoint of one input file: read, checked, skipped to, moved."""

    def __init__(self, path: Path, source: IO[bytes], input_name: str) -> None:
        """Load ``path`` (none yet: from the start) and skip ``source`` past its lines.

        Raises:
            UsageError: The checkpoint is for another input, unreadable, or the input's
                first lines are not the ones it settled.
        """
        self.path = path
        self.input = str(Path(input_name).resolve())
        self.lines = 0
        self._hash = hashlib.sha256()
        state = load_state(path, self.input, ("lines", "sha256"))
        if state is not None:
            if state.get("version") != _VERSION or int(state["lines"]) < 0:
                raise UsageError(f"--checkpoints {str(path)!r} is not a forward checkpoint")
            self._skip(source, state)

    def _skip(self, source: IO[bytes], state: dict[str, Any]) -> None:
        for _ in range(state["lines"]):
            line = source.readline()
            if not line:
                break
            self._hash.update(line)
            self.lines += 1
        if self.lines != state["lines"] or self._hash.hexdigest() != state["sha256"]:
            raise UsageError(
                f"the input is not the one --checkpoints {str(self.path)!r} was saved for: its "
                f"first {state['lines']} line(s) changed. Remove the checkpoint to send it all "
                f"again"
            )

    def lines_read(self, lines: Iterator[bytes]) -> Iterator[bytes]:
        """``lines``, counted and hashed as they are read."""
        for line in lines:
            self._hash.update(line)
            self.lines += 1
            yield line

    def settled(self, allowed: Callable[[], bool]) -> Settled:
        """A marker saving the lines read so far once all before it is settled (if ``allowed``)."""
        lines, digest = self.lines, self._hash.copy()

        def save() -> None:
            if allowed():
                self.save(lines, digest.hexdigest())

        return Settled(save)

    def save(self, lines: int, digest: str) -> None:
        """Replace the checkpoint: ``lines`` settled, their hash ``digest``."""
        state = {"version": _VERSION, "input": self.input, "lines": lines, "sha256": digest}
        save_state(self.path, state)


def load_state(path: Path, input_name: str, fields: tuple[str, ...]) -> dict[str, Any] | None:
    """The checkpoint in ``path`` (None: there is none yet), checked to be for ``input_name``.

    Raises:
        UsageError: It cannot be read, lacks one of ``fields``, or is another input's.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise UsageError(f"cannot read --checkpoints {str(path)!r}: {exc.strerror}") from None
    try:
        state = json.loads(text)
        state = {**state, **{f: _typed(f, state[f]) for f in fields}}
        where = str(state["input"])
    except (ValueError, KeyError, TypeError):
        raise UsageError(f"--checkpoints {str(path)!r} is not a forward checkpoint") from None
    if where != input_name:
        raise UsageError(
            f"--checkpoints {str(path)!r} is for {where!r}, not {input_name!r}: give another "
            f"file (or remove it to start over)"
        )
    return dict(state)


def _typed(field: str, value: object) -> object:
    """A count as an int, a hash as a string (ValueError/TypeError: neither)."""
    return int(value) if field in ("lines", "objects") else str(value)  # type: ignore[call-overload]


def save_state(path: Path, state: dict[str, Any]) -> None:
    """Replace the checkpoint in ``path`` whole (written aside, synced, renamed; 0600)."""
    data = json.dumps(state).encode()
    aside = path.with_name(path.name + ".new")
    fd = open_private(aside, append=False)
    try:
        write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    aside.chmod(PRIVATE_MODE)
    aside.replace(path)
