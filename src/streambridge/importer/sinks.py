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

:class:`PostHogSink` needs the ``posthog`` extra; :class:`JsonLinesSink` needs nothing.
"""

from __future__ import annotations

import array
import contextlib
import errno
import fcntl
import logging
import os
import random as _random
import select
import stat
import termios
import threading
import time
from collections.abc import Callable, Sequence
from typing import IO, Any

import attrs

from streambridge._files import ShortWriteError, is_regular, write_all
from streambridge._json import encode_record
from streambridge.errors import (
    ConfigurationError,
    EncodingError,
    OutputClosedError,
    PostHogAuthError,
    PostHogRefusedError,
    PostHogUnavailableError,
    SinkError,
)
from streambridge.importer.events import PostHogEvent
from streambridge.importer.results import SinkRefusal
from streambridge.retry import RetryPolicy

__all__ = ["MAX_EVENT_BYTES", "MAX_REQUEST_BYTES", "JsonLinesSink", "PostHogSink", "Sink"]

#: What the importer hands events to: any callable taking a sequence of events (see above).
Sink = Callable[[Sequence[PostHogEvent]], object]

logger = logging.getLogger("streambridge.sinks")

#: posthog-python's limit of one event (``MAX_MSG_SIZE``); PostHog discards events over 1 MB.
MAX_EVENT_BYTES = 900 * 1024
#: posthog-python's limit of one batch request (``BATCH_SIZE_LIMIT``), before gzip.
MAX_REQUEST_BYTES = 5 * 1024 * 1024
_RETRY_STATUSES = frozenset({408, 429})
_UNSENDABLE = -1  # not an HTTP status: the request body could not be built
_SPLIT_STATUSES = frozenset({400, 413, _UNSENDABLE})
_AUTH_STATUSES = frozenset({401, 403})


def _encoded(event: PostHogEvent) -> tuple[dict[str, Any], int] | SinkRefusal:
    """The event's capture JSON and its encoded size, or why it cannot be sent."""
    body = event.capture_json()
    try:
        data = encode_record(body)
    except EncodingError as exc:
        return SinkRefusal(event, f"cannot be sent: {exc}")
    if len(data) > MAX_EVENT_BYTES:
        return SinkRefusal(
            event,
            f"event of {len(data):,} bytes is over PostHog's limit of {MAX_EVENT_BYTES:,} bytes "
            f"(PostHog would discard it)",
        )
    return body, len(data)


@attrs.define(eq=False)
class PostHogSink:
    """Send events to PostHog's batch API and return only once PostHog answered 200 for all.

    Built on posthog-python's synchronous ``batch_post`` (the ``posthog`` extra), which raises
    on any answer but 200. Events go in requests of at most :data:`MAX_REQUEST_BYTES` of JSON,
    gzip-compressed. An answer of 5xx, 408 or 429, a timeout or a connection error is retried
    with capped exponential backoff and jitter (honouring ``Retry-After``) until ``retry``'s
    budget runs out; then :class:`~streambridge.errors.PostHogUnavailableError` is raised, and
    the importer reads the events again later. A 413 or 400 splits the request in halves to
    find the event PostHog refuses; that event alone is returned as a
    :class:`~streambridge.SinkRefusal`. A 401 or 403 raises
    :class:`~streambridge.errors.PostHogAuthError`, which stops the importer. Any other 4xx
    raises :class:`~streambridge.errors.PostHogRefusedError` (a wrong host, most likely),
    which stops it too. An event over :data:`MAX_EVENT_BYTES` is refused without being sent.

    Part of a request may have been accepted when a later part fails; the importer then sends
    the events again, and PostHog drops the duplicates by their deterministic uuids.

    Example::

        sink = PostHogSink(api_key="phc_...", host="https://eu.i.posthog.com")
        KinesisImporter(client, settings, sink=sink, checkpoints=store).run(stop=stop)

    Attributes:
        api_key: The project API key (never shown in ``repr`` or messages).
        host: PostHog's ingestion host.
        historical_migration: Mark the events as a historical import (see PostHog's docs).
        gzip: Compress request bodies.
        timeout: Seconds for one request.
        retry: Backoff and budgets for one call of the sink.
    """

    api_key: str = attrs.field(repr=False)
    host: str = "https://us.i.posthog.com"
    historical_migration: bool = False
    gzip: bool = True
    timeout: float = 15.0
    retry: RetryPolicy = attrs.field(
        factory=lambda: RetryPolicy(
            max_attempts=1_000_000, base_delay=0.5, max_delay=15.0, max_elapsed=60.0
        )
    )
    max_request_bytes: int = MAX_REQUEST_BYTES
    sleep: Callable[[float], object] | None = attrs.field(default=None, repr=False)
    clock: Callable[[], float] = attrs.field(default=time.monotonic, repr=False)
    random: Callable[[], float] = attrs.field(default=_random.random, repr=False)
    post: Callable[..., Any] | None = attrs.field(default=None, repr=False)
    requests: int = attrs.field(default=0, init=False)
    _abandoned: threading.Event = attrs.field(factory=threading.Event, init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        """Check the key and find posthog-python."""
        if not self.api_key.strip():
            msg = "PostHogSink needs a project API key (api_key)"
            raise ConfigurationError(msg)
        if self.post is None:
            try:
                from posthog.request import batch_post  # noqa: PLC0415 - the `posthog` extra
            except ImportError:
                msg = "PostHogSink needs the posthog extra: pip install 'streambridge[posthog]'"
                raise ConfigurationError(msg) from None
            self.post = batch_post

    def __call__(self, events: Sequence[PostHogEvent]) -> list[SinkRefusal]:
        """Deliver ``events``; return those PostHog can never take, with the reason.

        Raises:
            PostHogUnavailableError: PostHog could not be reached, or kept answering 5xx/429,
                for the whole retry budget (or :meth:`abandon` was called).
            PostHogAuthError: PostHog refused the API key (401/403).
            PostHogRefusedError: Another answer retrying cannot fix.
        """
        refused: list[SinkRefusal] = []
        chunk: list[dict[str, Any]] = []
        chunk_events: list[PostHogEvent] = []
        size = 0
        for event in events:
            encoded = _encoded(event)
            if isinstance(encoded, SinkRefusal):
                refused.append(encoded)
                continue
            body, length = encoded
            if chunk and size + length + 1 > self.max_request_bytes:
                refused.extend(self._deliver(chunk, chunk_events))
                chunk, chunk_events, size = [], [], 0
            chunk.append(body)
            chunk_events.append(event)
            size += length + 1
        if chunk:
            refused.extend(self._deliver(chunk, chunk_events))
        return refused

    def abandon(self) -> None:
        """Give up: the call in progress stops at its next wait, and later calls at once.

        Thread-safe; for a clean stop on SIGTERM while PostHog is down. The events of the
        abandoned call were not accepted, so their checkpoint does not move.
        """
        self._abandoned.set()

    def _deliver(
        self, batch: list[dict[str, Any]], events: list[PostHogEvent]
    ) -> list[SinkRefusal]:
        """Send one request's worth, retrying; split on 400/413 to isolate what is refused."""
        status, message = self._send(batch)
        if status is None:
            return []
        if len(batch) == 1:
            why = (
                message
                if status == _UNSENDABLE
                else f"PostHog refused it (HTTP {status}: {message})"
            )
            return [SinkRefusal(events[0], why)]
        half = len(batch) // 2
        return self._deliver(batch[:half], events[:half]) + self._deliver(
            batch[half:], events[half:]
        )

    def _send(self, batch: list[dict[str, Any]]) -> tuple[int | None, str]:
        """POST until 200 (None) or a 400/413 (the status); raise what cannot be fixed."""
        start = self.clock()
        retry = 0
        while True:
            if self._abandoned.is_set():
                msg = f"gave up sending {len(batch)} event(s) to PostHog: the sink was abandoned"
                raise PostHogUnavailableError(msg)
            status, message, retry_after = self._post_once(batch)
            if status is None or status in _SPLIT_STATUSES:
                return status, message
            retry += 1
            wait = self.retry.next_delay(retry, self.clock() - start, self.random)
            if wait is not None and retry_after is not None:
                wait = max(wait, min(retry_after, self.retry.max_delay))
            if wait is None:
                msg = (
                    f"PostHog at {self.host} did not accept {len(batch)} event(s) after "
                    f"{retry} attempt(s) in {self.clock() - start:.1f}s (last: {message})"
                )
                raise PostHogUnavailableError(msg)
            logger.debug("PostHog: %s; retrying in %.2fs", message, wait)
            self._wait(wait)

    def _wait(self, seconds: float) -> None:
        if self.sleep is None:
            self._abandoned.wait(seconds)
        else:
            self.sleep(seconds)

    def _post_once(self, batch: list[dict[str, Any]]) -> tuple[int | None, str, float | None]:
        """One request: (None, "", None) on 200, else (status or 0, message, Retry-After)."""
        self.requests += 1
        assert self.post is not None  # noqa: S101 - set in __attrs_post_init__
        try:
            self.post(
                self.api_key,
                self.host,
                gzip=self.gzip,
                timeout=self.timeout,
                batch=batch,
                historical_migration=self.historical_migration,
            )
        except Exception as exc:  # noqa: BLE001 - requests' and posthog's errors, sorted below
            status = getattr(exc, "status", None)
            if not isinstance(status, int) and isinstance(exc, OSError):  # requests' errors
                return 0, f"{type(exc).__name__}: {exc}", None
            if not isinstance(status, int):  # the body could not be built (too deep…)
                return _UNSENDABLE, f"cannot be sent ({type(exc).__name__}: {exc})", None
            text = str(getattr(exc, "message", exc))[:200]
            if status in _AUTH_STATUSES:
                msg = (
                    f"PostHog at {self.host} refused the project API key (HTTP {status}): "
                    f"check the key (and that it belongs to this host's region). PostHog said: "
                    f"{text}"
                )
                raise PostHogAuthError(msg) from None
            if status >= 500 or status in _RETRY_STATUSES:  # noqa: PLR2004
                return status, f"HTTP {status}: {text}", getattr(exc, "retry_after", None)
            if status in _SPLIT_STATUSES:
                return status, text, None
            msg = (
                f"PostHog at {self.host} answered HTTP {status}, which retrying cannot fix: "
                f"check the host. PostHog said: {text}"
            )
            raise PostHogRefusedError(msg) from None
        return None, "", None


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
                lines.append(encode_record(event.capture_json()) + b"\n")
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
