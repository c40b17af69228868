"""A local stand-in for PostHog's capture API on 127.0.0.1, for tests (standard library only)."""

from __future__ import annotations

import gzip
import http.server
import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["LocalPostHog", "local_posthog"]


class LocalPostHog:
    """A stand-in for PostHog's capture API (``POST /batch/``) on 127.0.0.1, for tests.

    It answers 200 and keeps the events of every accepted request in :attr:`events`, unless
    told otherwise: :meth:`answer` queues statuses for the next requests, :meth:`down_for`
    answers 503 for a while, :attr:`status` is the answer once those are used up,
    :attr:`max_batch` answers 413 to a request with more events, and :attr:`refuse` answers
    400 to a request holding an event it returns True for, and :attr:`delay` holds every
    answer that long (PostHog's own latency). Start it with :func:`local_posthog`.

    Attributes:
        url: ``http://127.0.0.1:<port>``: pass it as the PostHog host.
        events: The events of the requests answered 200, in order (duplicates kept).
        requests: Requests received.
        api_keys: The ``api_key`` of each request.
        historical: The ``historical_migration`` flag of each request.
        bodies: Each request's decoded body, when :attr:`keep_bodies` is set.
        delay: Seconds each answer is held before it is sent (default 0).
        in_flight: Requests being answered now.
        peak_in_flight: The most requests ever being answered at once.
    """

    def __init__(self) -> None:
        """An idle stand-in; :func:`local_posthog` serves it."""
        self.url = ""
        self.events: list[dict[str, Any]] = []
        self.requests = 0
        self.api_keys: list[str] = []
        self.historical: list[bool] = []
        self.status = 200
        self.max_batch: int | None = None
        self.refuse: Callable[[dict[str, Any]], bool] | None = None
        self.delay = 0.0
        self.keep_bodies = False
        self.bodies: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.in_flight = 0
        self.peak_in_flight = 0
        self._queue: deque[int] = deque()
        self._down_until = 0.0
        self._lock = threading.Lock()

    def answer(self, *statuses: int) -> None:
        """Answer the next requests with these HTTP statuses, in order."""
        with self._lock:
            self._queue.extend(statuses)

    def down_for(self, seconds: float) -> None:
        """Answer 503 to every request for the next ``seconds``."""
        with self._lock:
            self._down_until = time.monotonic() + seconds

    def _arrived(self) -> None:
        with self._lock:
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)

    def _answered(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def _respond(self, body: dict[str, Any], headers: dict[str, str]) -> int:
        batch = body.get("batch")
        events = batch if isinstance(batch, list) else []
        with self._lock:
            self.requests += 1
            if self.keep_bodies:
                self.bodies.append(body)
                self.headers.append(headers)
            self.api_keys.append(str(body.get("api_key")))
            self.historical.append(body.get("historical_migration") is True)
            if self._queue:
                status = self._queue.popleft()
            elif time.monotonic() < self._down_until:
                status = 503
            else:
                status = self.status
            if status == 200 and self.max_batch is not None and len(events) > self.max_batch:  # noqa: PLR2004
                status = 413
            if status == 200 and self.refuse is not None and any(map(self.refuse, events)):  # noqa: PLR2004
                status = 400
            if status == 200:  # noqa: PLR2004
                self.events.extend(events)
            return status


def _posthog_handler(stand_in: LocalPostHog) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as PostHog's own endpoint
        disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms wait

        def do_POST(self) -> None:
            stand_in._arrived()  # noqa: SLF001
            try:
                self._answer()
            finally:
                stand_in._answered()  # noqa: SLF001

        def _answer(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if self.headers.get("Content-Encoding") == "gzip":
                raw = gzip.decompress(raw)
            try:
                body = json.loads(raw)
            except ValueError:
                body = {}
            headers = {name.lower(): value for name, value in self.headers.items()}
            status = stand_in._respond(body if isinstance(body, dict) else {}, headers)  # noqa: SLF001
            if stand_in.delay > 0:
                time.sleep(stand_in.delay)
            reply = b'{"status": "Ok"}' if status == 200 else b'{"detail": "injected"}'  # noqa: PLR2004
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args: Any) -> None:
            """Quiet."""

    return Handler


@contextmanager
def local_posthog() -> Iterator[LocalPostHog]:
    """Serve a :class:`LocalPostHog` on 127.0.0.1 (a free port) for the duration of the block."""
    stand_in = LocalPostHog()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _posthog_handler(stand_in))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    stand_in.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield stand_in
    finally:
        server.shutdown()
        server.server_close()
