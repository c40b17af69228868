"""Sinks for :class:`~streambridge.KinesisImporter`: PostHog (confirmed delivery), JSON lines.

A sink is any callable that takes a sequence of :class:`~streambridge.PostHogEvent` and returns
only once the destination has them. The importer moves a shard's checkpoint only after the
sink returns, so **a sink that returns before the destination confirmed loses events** (the
posthog-python client's ``capture()`` queues in memory and sends in the background: it is such
a sink). A sink reports what went wrong in one of three ways:

* it **raises** — the events were not delivered; the importer reads them again later (an
  exception derived from :class:`~streambridge.errors.FatalSinkError` stops the importer
  instead: a bad API key will not fix itself);
* it **returns a list of** :class:`~streambridge.SinkRefusal` — those events can never be
  delivered (too large, refused by the destination as invalid); the importer counts them as
  skipped records, with the reason, and the rest as delivered;
* it returns anything else (None) — every event was delivered.

A sink may say how many calls it takes at once from several threads with a ``calls_in_flight``
attribute (:class:`PostHogSink`'s ``concurrency``); the importer and the Lambda handler keep
that many calls in flight. A sink without one is called one call at a time, in the caller's
thread. :class:`PostHogSink` lives in :mod:`streambridge.importer.capture`; neither sink needs
an extra.
"""

from __future__ import annotations

import array
import contextlib
import errno
import fcntl
import logging
import os
import select
import stat
import termios
import threading
import time
from collections.abc import Callable, Sequence
from typing import IO

from streambridge._files import ShortWriteError, is_regular, write_all
from streambridge.errors import (
    EncodingError,
    OutputClosedError,
    SinkError,
)
from streambridge.importer.capture import MAX_EVENT_BYTES, MAX_REQUEST_BYTES, PostHogSink
from streambridge.importer.events import PostHogEvent
from streambridge.importer.results import SinkRefusal

__all__ = [
    "MAX_EVENT_BYTES",
    "MAX_REQUEST_BYTES",
    "JsonLinesSink",
    "PostHogSink",
    "Sink",
    "calls_in_flight",
]

#: What the importer hands events to: any callable taking a sequence of events (see above).
Sink = Callable[[Sequence[PostHogEvent]], object]


def calls_in_flight(sink: object) -> int:
    """How many calls ``sink`` takes at once: its ``calls_in_flight`` attribute, else 1."""
    wanted = getattr(sink, "calls_in_flight", 1)
    return wanted if isinstance(wanted, int) and not isinstance(wanted, bool) and wanted > 1 else 1


logger = logging.getLogger("streambridge.sinks")


class JsonLinesSink:
    """Write events as JSON lines (PostHog's capture JSON) to a text stream, flushed per call.

    Every line is strict UTF-8 JSON; an event that cannot be written so is refused (the
    importer checks events before, so this is the last line of defence). A call returns only
    once every byte of its lines reached the output: a stream with a file descriptor (a file,
    stdout, a pipe) is written with ``os.write`` until all is taken, because a pipe whose reader
    left can take part of a write and say so only by its count. Into a pipe, a call returns
    only once the reader has *read* every line, one line in the pipe at a time: lines left in a
    pipe whose reader exits (``| head``) are lost with it, so they are never counted written.
    A closed pipe raises :class:`~streambridge.errors.OutputClosedError` (the importer stops);
    other write errors (a full disk…) are raised as they are, and the importer tries again
    later — a write cut part way into a regular file is taken back first, so no line is left
    torn.
    """

    def __init__(self, stream: IO[str], *, fsync: bool = False) -> None:
        """Write to ``stream``; with ``fsync``, force each call's lines to disk before returning."""
        self.stream = stream
        self.fsync = fsync
        self._abandoned = threading.Event()

    def abandon(self) -> None:
        """Stop waiting for a pipe's reader (SIGTERM): the call raises, nothing is checkpointed."""
        self._abandoned.set()

    def __call__(self, events: Sequence[PostHogEvent]) -> list[SinkRefusal]:
        """Write the events; return those that cannot be written."""
        lines: list[bytes] = []
        refused: list[SinkRefusal] = []
        for event in events:
            try:
                lines.append(event.capture_bytes() + b"\n")
            except EncodingError as exc:  # noqa: PERF203 - rare
                refused.append(SinkRefusal(event, f"cannot be written: {exc}"))
        data = b"".join(lines)
        try:
            fd = self._fileno()
            if fd is None:
                self.stream.write(data.decode("utf-8"))
                self.stream.flush()
            elif stat.S_ISFIFO(os.fstat(fd).st_mode):
                _write_to_pipe(fd, lines, self._abandoned)
            else:
                self._write(fd, data)
        except BrokenPipeError:  # `| head`: the reader is gone and will not come back
            msg = "the output was closed (broken pipe): the events were not written"
            raise OutputClosedError(msg) from None
        except ShortWriteError as exc:
            if exc.errno == errno.EPIPE:
                msg = (
                    f"the output was closed (broken pipe) after {exc.written:,} of "
                    f"{len(data):,} bytes: the events were not all written"
                )
                raise OutputClosedError(msg) from None
            raise
        return refused

    def _fileno(self) -> int | None:
        """The stream's file descriptor, after flushing what went through it; None: none."""
        try:
            fd = self.stream.fileno()
        except (AttributeError, OSError, ValueError):  # io.StringIO, a test's capture
            return None
        self.stream.flush()
        return fd

    def _write(self, fd: int, data: bytes) -> None:
        regular = is_regular(fd)
        start = os.lseek(fd, 0, os.SEEK_END) if regular else 0
        try:
            write_all(fd, data)
            if self.fsync:
                os.fsync(fd)
        except ShortWriteError as exc:
            if regular and exc.written:  # take the cut lines back: the call is made again
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, start)
                    os.lseek(fd, start, os.SEEK_SET)
            raise


def _unread(fd: int) -> int:
    """Bytes written into a pipe that its reader has not read yet."""
    count = array.array("i", [0])
    fcntl.ioctl(fd, termios.FIONREAD, count, True)  # noqa: FBT003 - ioctl's mutate_flag
    return count[0]


def _reader_gone(fd: int) -> bool:
    poller = select.poll()
    poller.register(fd, 0)  # POLLERR only: nobody has the pipe open for reading any more
    return bool(poller.poll(0))


def _write_to_pipe(fd: int, lines: Sequence[bytes], abandoned: threading.Event) -> None:
    """Write line by line, each read by the reader before the next goes in.

    A reader that leaves (``head`` has its lines) takes with it what it had not read: so a
    line counts as written only once read, and a reader that reads a block at a time gets one
    line a read. Raises ShortWriteError (EPIPE) when the reader left before reading them all.
    """
    for done, line in enumerate(lines):
        write_all(fd, line)
        delay = 0.0
        while _unread(fd):
            if _reader_gone(fd):
                raise ShortWriteError(OSError(errno.EPIPE, "Broken pipe"), done)
            if abandoned.is_set():
                msg = f"gave up waiting for the output's reader after {done} line(s)"
                raise SinkError(msg)
            time.sleep(delay)
            delay = min(delay * 2 or 0.00005, 0.01)
