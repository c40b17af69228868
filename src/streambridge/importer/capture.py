"""PostHogSink: events to PostHog's batch capture API, confirmed before the importer moves on.

PostHog's documented ``POST /batch/`` endpoint, spoken directly with urllib3 (botocore's own
HTTP client, so no dependency of ours): each event is encoded once (orjson with the ``fast``
extra), a request's body is those bytes joined, gzip-compressed at :data:`GZIP_LEVEL`. Until
0.2 this went through posthog-python's ``batch_post``, which re-encodes every event with the
standard library, walks every value for non-finite floats and compresses at level 9: about
5x the CPU for the same request (``bench/posthog_sink.py``, docs/performance.md).

The sink is thread-safe and keeps up to ``concurrency`` requests in flight — the chunks of one
large call at once, and calls from several threads (the importer's and the Lambda handler's
sink calls in flight) — behind one connection pool of that size.
"""

from __future__ import annotations

import logging
import threading
import time
import zlib
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING

import attrs

from streambridge._json import encode_record, loads
from streambridge.errors import (
    ConfigurationError,
    EncodingError,
    PostHogAuthError,
    PostHogRefusedError,
    PostHogUnavailableError,
)
from streambridge.importer.events import PostHogEvent
from streambridge.importer.results import SinkRefusal
from streambridge.retry import RetryPolicy

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

__all__ = [
    "CONCURRENCY",
    "GZIP_LEVEL",
    "MAX_EVENT_BYTES",
    "MAX_REQUEST_BYTES",
    "PostHogSink",
    "Transport",
]

logger = logging.getLogger("streambridge.sinks")

#: posthog-python's limit of one event (``MAX_MSG_SIZE``); PostHog discards events over 1 MB.
MAX_EVENT_BYTES = 900 * 1024
#: posthog-python's limit of one batch request (``BATCH_SIZE_LIMIT``), before gzip.
MAX_REQUEST_BYTES = 5 * 1024 * 1024
#: gzip level of request bodies: level 1 costs a fifth of level 9's CPU for ~15 % more bytes
#: on realistic events (``bench/posthog_sink.py``).
GZIP_LEVEL = 1
#: Requests in flight at once by default (the sink's connection pool has as many connections).
CONCURRENCY = 32
#: The batch endpoint (PostHog's capture API; posthog-python's ``EVENTS_ENDPOINT``).
BATCH_PATH = "/batch/"

_RETRY_STATUSES = frozenset({408, 429})
_SPLIT_STATUSES = frozenset({400, 413})
_AUTH_STATUSES = frozenset({401, 403})
#: PostHog's app hosts, which do not ingest: posthog-python sends their events here instead.
_INGESTION_HOSTS = {
    "https://app.posthog.com": "https://us.i.posthog.com",
    "https://us.posthog.com": "https://us.i.posthog.com",
    "https://eu.posthog.com": "https://eu.i.posthog.com",
}

#: One HTTP POST: ``(url, body, headers, timeout)`` -> ``(status, body, headers)``; raises
#: OSError when no whole answer came (refused, timed out, cut short).
Transport = Callable[[str, bytes, dict[str, str], float], tuple[int, bytes, dict[str, str]]]


def ingestion_host(host: str) -> str:
    """The host events go to: no trailing slash; PostHog's app hosts mapped as posthog-python."""
    trimmed = host.strip().rstrip("/") or "https://us.i.posthog.com"
    return _INGESTION_HOSTS.get(trimmed, trimmed)


class _Urllib3:
    """The default transport: one urllib3 pool manager of ``size`` connections per host."""

    def __init__(self, size: int) -> None:
        import urllib3  # noqa: PLC0415 - botocore's client: imported only when a request is made

        self._urllib3 = urllib3
        self._pool = urllib3.PoolManager(num_pools=4, maxsize=size, retries=False)

    def __call__(
        self, url: str, body: bytes, headers: dict[str, str], timeout: float
    ) -> tuple[int, bytes, dict[str, str]]:
        try:
            response = self._pool.request(
                "POST",
                url,
                body=body,
                headers=headers,
                timeout=self._urllib3.Timeout(total=timeout),
                preload_content=True,
                enforce_content_length=True,  # a 200 cut short is no answer (urllib3 1.26 too)
            )
        except self._urllib3.exceptions.HTTPError as exc:  # no answer: refused, timed out, cut
            raise ConnectionError(f"{type(exc).__name__}: {exc}") from exc
        return response.status, response.data, dict(response.headers)


def _retry_after(headers: dict[str, str]) -> float | None:
    """``Retry-After`` in seconds (a number or an HTTP date), or None."""
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    import email.utils  # noqa: PLC0415 - rare: an HTTP date in Retry-After

    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


def _detail(body: bytes) -> str:
    """What PostHog said in an error answer: its ``detail``, or the text (200 characters)."""
    try:
        parsed = loads(body)
    except (ValueError, RecursionError):
        parsed = None
    detail = parsed.get("detail") if isinstance(parsed, dict) else None
    if isinstance(detail, str):
        return detail[:200]
    return body[:200].decode("utf-8", "replace")


def _jitter() -> float:
    """``random.random()``, imported on the first retry (off a Lambda's cold path)."""
    import random  # noqa: PLC0415

    return random.random()


@attrs.define(eq=False)
class PostHogSink:
    """Send events to PostHog's batch API and return only once PostHog answered 200 for all.

    Events go in requests of at most :data:`MAX_REQUEST_BYTES` of JSON, gzip-compressed, up to
    ``concurrency`` requests at once (a call's chunks together; calls from several threads
    share the limit and the connections). An answer of 5xx, 408 or 429, a timeout, a
    connection error or an answer cut short is retried with capped exponential backoff and
    jitter (honouring ``Retry-After``) until ``retry``'s budget runs out; then
    :class:`~streambridge.errors.PostHogUnavailableError` is raised, and the importer reads the
    events again later. A 413 or 400 splits the request in halves to find the event PostHog
    refuses; that event alone is returned as a :class:`~streambridge.SinkRefusal`. A 401 or 403
    raises :class:`~streambridge.errors.PostHogAuthError`, which stops the importer. Any other
    4xx raises :class:`~streambridge.errors.PostHogRefusedError` (a wrong host, most likely),
    which stops it too. An event over :data:`MAX_EVENT_BYTES`, or that cannot be encoded as
    strict JSON, is refused without being sent.

    Part of a call may have been accepted when another part fails; the importer then sends the
    events again, and PostHog drops the duplicates by their deterministic uuids.

    Example::

        sink = PostHogSink(api_key="phc_...", host="https://eu.i.posthog.com")
        KinesisImporter(client, settings, sink=sink, checkpoints=store).run(stop=stop)

    Attributes:
        api_key: The project API key (never shown in ``repr`` or messages).
        host: PostHog's ingestion host.
        historical_migration: Mark the events as a historical import (see PostHog's docs).
        gzip: Compress request bodies (at ``gzip_level``, 1-9).
        timeout: Seconds for one request.
        retry: Backoff and budgets for one request's retries.
        concurrency: Requests in flight at once; also the sink calls the importer and the
            Lambda handler keep in flight (:attr:`calls_in_flight`).
        transport: One HTTP POST (default: urllib3); inject one in tests.
        requests: Requests made so far.
    """

    api_key: str = attrs.field(repr=False)
    host: str = "https://us.i.posthog.com"
    historical_migration: bool = False
    gzip: bool = True
    gzip_level: int = GZIP_LEVEL
    timeout: float = 15.0
    retry: RetryPolicy = attrs.field(
        factory=lambda: RetryPolicy(
            max_attempts=1_000_000, base_delay=0.5, max_delay=15.0, max_elapsed=60.0
        )
    )
    max_request_bytes: int = MAX_REQUEST_BYTES
    concurrency: int = CONCURRENCY
    sleep: Callable[[float], object] | None = attrs.field(default=None, repr=False)
    clock: Callable[[], float] = attrs.field(default=time.monotonic, repr=False)
    random: Callable[[], float] = attrs.field(default=_jitter, repr=False)
    transport: Transport | None = attrs.field(default=None, repr=False)
    requests: int = attrs.field(default=0, init=False)
    _abandoned: threading.Event = attrs.field(factory=threading.Event, init=False, repr=False)
    _lock: threading.Lock = attrs.field(factory=threading.Lock, init=False, repr=False)
    _slots: threading.BoundedSemaphore = attrs.field(init=False, repr=False)
    _chunks: ThreadPoolExecutor | None = attrs.field(default=None, init=False, repr=False)
    _url: str = attrs.field(default="", init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        """Check the settings."""
        if not self.api_key.strip():
            msg = "PostHogSink needs a project API key (api_key)"
            raise ConfigurationError(msg)
        if self.concurrency < 1:
            msg = f"PostHogSink's concurrency must be at least 1, got {self.concurrency}"
            raise ConfigurationError(msg)
        if not 1 <= self.gzip_level <= 9:  # noqa: PLR2004
            msg = f"PostHogSink's gzip_level must be 1 to 9, got {self.gzip_level}"
            raise ConfigurationError(msg)
        self._slots = threading.BoundedSemaphore(self.concurrency)
        self._url = ingestion_host(self.host) + BATCH_PATH

    @property
    def calls_in_flight(self) -> int:
        """Calls the importer and the Lambda handler may make at once (``concurrency``)."""
        return self.concurrency

    def __call__(self, events: Sequence[PostHogEvent]) -> list[SinkRefusal]:
        """Deliver ``events``; return those PostHog can never take, with the reason.

        Raises:
            PostHogUnavailableError: PostHog could not be reached, or kept answering 5xx/429,
                for the whole retry budget (or :meth:`abandon` was called).
            PostHogAuthError: PostHog refused the API key (401/403).
            PostHogRefusedError: Another answer retrying cannot fix.
        """
        refused: list[SinkRefusal] = []
        chunks: list[tuple[list[bytes], list[PostHogEvent]]] = []
        chunk: list[bytes] = []
        chunk_events: list[PostHogEvent] = []
        size = 0
        for event in events:
            try:
                data = event.capture_bytes()
            except EncodingError as exc:
                refused.append(SinkRefusal(event, f"cannot be sent: {exc}"))
                continue
            if len(data) > MAX_EVENT_BYTES:
                why = (
                    f"event of {len(data):,} bytes is over PostHog's limit of "
                    f"{MAX_EVENT_BYTES:,} bytes (PostHog would discard it)"
                )
                refused.append(SinkRefusal(event, why))
                continue
            if chunk and size + len(data) + 1 > self.max_request_bytes:
                chunks.append((chunk, chunk_events))
                chunk, chunk_events, size = [], [], 0
            chunk.append(data)
            chunk_events.append(event)
            size += len(data) + 1
        if chunk:
            chunks.append((chunk, chunk_events))
        if len(chunks) == 1 or self.concurrency == 1:
            for parts, sent in chunks:
                refused.extend(self._deliver(parts, sent))
            return refused
        pool = self._chunk_pool()
        futures = [pool.submit(self._deliver, parts, sent) for parts, sent in chunks]
        failure: BaseException | None = None
        for future in futures:  # every chunk ends before the call does, whatever happened
            try:
                refused.extend(future.result())
            except Exception as exc:  # noqa: BLE001, PERF203 - raised below, the first in order
                failure = failure or exc
        if failure is not None:
            raise failure
        return refused

    def abandon(self) -> None:
        """Give up: the calls in progress stop at their next wait, and later calls at once.

        Thread-safe; for a clean stop on SIGTERM while PostHog is down. The events of the
        abandoned call were not accepted, so their checkpoint does not move.
        """
        self._abandoned.set()

    def close(self) -> None:
        """Let the chunk threads go (they are made again if the sink is called later)."""
        with self._lock:
            pool, self._chunks = self._chunks, None
        if pool is not None:
            pool.shutdown(wait=True)

    def _chunk_pool(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._chunks is None:
                from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415 - cold start

                self._chunks = ThreadPoolExecutor(self.concurrency, "streambridge-posthog")
            return self._chunks

    def _deliver(self, parts: list[bytes], events: list[PostHogEvent]) -> list[SinkRefusal]:
        """Send one request's worth, retrying; split on 400/413 to isolate what is refused."""
        status, message = self._send(parts)
        if status is None:
            return []
        if len(parts) == 1:
            return [SinkRefusal(events[0], f"PostHog refused it (HTTP {status}: {message})")]
        half = len(parts) // 2
        return self._deliver(parts[:half], events[:half]) + self._deliver(
            parts[half:], events[half:]
        )

    def _send(self, parts: list[bytes]) -> tuple[int | None, str]:
        """POST until 200 (None) or a 400/413 (the status); raise what cannot be fixed."""
        start = self.clock()
        retry = 0
        while True:
            if self._abandoned.is_set():
                msg = f"gave up sending {len(parts)} event(s) to PostHog: the sink was abandoned"
                raise PostHogUnavailableError(msg)
            status, message, retry_after = self._post_once(parts)
            if status is None or status in _SPLIT_STATUSES:
                return status, message
            retry += 1
            wait = self.retry.next_delay(retry, self.clock() - start, self.random)
            if wait is not None and retry_after is not None:
                wait = max(wait, min(retry_after, self.retry.max_delay))
            if wait is None:
                msg = (
                    f"PostHog at {self.host} did not accept {len(parts)} event(s) after "
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

    def _body(self, parts: list[bytes]) -> tuple[bytes, dict[str, str]]:
        """The request: ``{"api_key", "historical_migration", "sent_at", "batch"}``, gzipped."""
        head = encode_record(
            {
                "api_key": self.api_key,
                "historical_migration": self.historical_migration,
                "sent_at": datetime.now(timezone.utc).isoformat(),
            }
        )
        body = b"".join((head[:-1], b',"batch":[', b",".join(parts), b"]}"))
        headers = {"Content-Type": "application/json", "User-Agent": "streambridge"}
        if self.gzip:
            packer = zlib.compressobj(self.gzip_level, zlib.DEFLATED, 31)  # 31: a gzip stream
            body = packer.compress(body) + packer.flush()
            headers["Content-Encoding"] = "gzip"
        return body, headers

    def _post_once(self, parts: list[bytes]) -> tuple[int | None, str, float | None]:
        """One request: (None, "", None) on 200, else (status or 0, message, Retry-After)."""
        body, headers = self._body(parts)
        with self._lock:
            self.requests += 1
            if self.transport is None:
                self.transport = _Urllib3(self.concurrency)
            transport = self.transport
        try:
            with self._slots:
                status, answer, answer_headers = transport(self._url, body, headers, self.timeout)
        except OSError as exc:  # no whole answer: an outage, retried
            return 0, f"{type(exc).__name__}: {exc}", None
        if status == 200:  # noqa: PLR2004
            return None, "", None
        text = _detail(answer)
        if status in _AUTH_STATUSES:
            msg = (
                f"PostHog at {self.host} refused the project API key (HTTP {status}): "
                f"check the key (and that it belongs to this host's region). PostHog said: "
                f"{text}"
            )
            raise PostHogAuthError(msg)
        if status >= 500 or status in _RETRY_STATUSES:  # noqa: PLR2004
            return status, f"HTTP {status}: {text}", _retry_after(answer_headers)
        if status in _SPLIT_STATUSES:
            return status, text, None
        msg = (
            f"PostHog at {self.host} answered HTTP {status}, which retrying cannot fix: "
            f"check the host. PostHog said: {text}"
        )
        raise PostHogRefusedError(msg)
