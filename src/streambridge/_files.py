"""Files that hold events: created 0600, written whole or not believed written.

Dead letters, checkpoints and ``--output`` hold IP addresses, device ids and whole events, so a
file streambridge creates for them is readable by its owner only (``0600``, whatever the umask);
a file that exists already keeps its mode. :func:`write_all` writes every byte or raises: a
pipe or a full disk that takes part of a write is not a write that succeeded.
"""

from __future__ import annotations

import os
import stat

__all__ = [
    "PRIVATE_MODE",
    "ShortWriteError",
    "create_private",
    "is_regular",
    "open_private",
    "write_all",
]

#: The mode of the files streambridge creates for events (owner read and write).
PRIVATE_MODE = 0o600


class ShortWriteError(OSError):
    """A write that stopped part way; ``written`` bytes of it reached the file."""

    def __init__(self, cause: OSError, written: int) -> None:
        """``cause`` stopped the write after ``written`` bytes."""
        super().__init__(cause.errno, cause.strerror or str(cause))
        self.written = written


def open_private(path: str | os.PathLike[str], *, append: bool, read: bool = False) -> int:
    """A file descriptor for writing ``path``, created ``0600`` (an existing file keeps its mode).

    Args:
        path: The file.
        append: Append to what is there (else truncate it).
        read: Open it for reading too (to look at its last byte).
    """
    flags = (os.O_RDWR if read else os.O_WRONLY) | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
    flags |= os.O_APPEND if append else os.O_TRUNC
    return os.open(path, flags, PRIVATE_MODE)


def create_private(path: str | os.PathLike[str]) -> None:
    """Create ``path`` empty and ``0600`` if it does not exist (for files others open, SQLite)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), PRIVATE_MODE)
    os.close(fd)


def write_all(fd: int, data: bytes) -> None:
    """Write every byte of ``data`` to ``fd``.

    Raises:
        ShortWriteError: The write stopped part way (its ``errno`` says why: ``ENOSPC``,
            ``EPIPE``…); ``written`` bytes reached the file.
    """
    view, done = memoryview(data), 0
    while done < len(view):
        try:
            written = os.write(fd, view[done:])
        except OSError as exc:
            raise ShortWriteError(exc, done) from exc
        if written == 0:  # pragma: no cover - no file system answers 0 for a non-empty write
            raise ShortWriteError(OSError(5, "the write made no progress"), done)
        done += written


def is_regular(fd: int) -> bool:
    """Whether ``fd`` is a regular file (not a pipe, a terminal or a device such as /dev/full)."""
    return stat.S_ISREG(os.fstat(fd).st_mode)
