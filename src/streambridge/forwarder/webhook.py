"""mParticle's Webhook integration -> Firehose: one HTTP request in, one answer out.

The one request -> answer function of every HTTP way in: ``streambridge serve``'s ASGI
application (:mod:`streambridge.forwarder.asgi`) and, later, a Lambda handler's HTTP route.
It does no I/O of its own but the forwarder's calls (and dead-letter writes); the server reads
the body (within :attr:`WebhookReceiver.max_body_bytes`) and writes the answer.

The rules (docs/serve.md says why):

* ``GET /healthz`` answers 200; anything else must be a ``POST`` (405 otherwise, any path).
* The ``Authorization`` header must be exactly the expected value (compared in constant time;
  the header's name is case-insensitive, its value is not): 401 otherwise, nothing forwarded.
* The body is one mParticle batch, JSON (``Content-Encoding: gzip`` too, decompressed within
  the same limit): 413 past the limit, 415 for another encoding, 400 with the reason for
  anything that is not a batch.
* **2xx only once every record of the batch was accepted by Firehose** (or filtered by the
  settings). A record not delivered is written to the dead letter when there is one, and the
  answer is 503 with ``Retry-After`` when retrying may help (throttling, a service fault,
  a failed connection), 502 when it cannot (access denied, no such stream, a record Firehose
  refuses): mParticle retries either, so nothing is lost; a retry may duplicate records that
  were delivered, never lose one.
"""

from __future__ import annotations

import hmac
import logging
import threading
import zlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs

from streambridge._json import encode_record, loads
from streambridge.deadletter import DeadLetterTarget
from streambridge.forwarder.forwarder import FirehoseForwarder
from streambridge.forwarder.gathering import Delivered, Gatherer
from streambridge.forwarder.results import ForwardResult
from streambridge.metrics import Metrics

__all__ = ["MAX_BODY_BYTES", "Answer", "Taken", "WebhookReceiver"]

logger = logging.getLogger("streambridge.forwarder.webhook")

#: Default limit of a request's body, before and after gzip: mParticle's batches are far
#: smaller (a batch becomes at most a few Firehose records of 1,000 KiB).
MAX_BODY_BYTES = 4 * 1024 * 1024

_JSON = (("content-type", "application/json"),)


@attrs.frozen
class Answer:
    """An HTTP answer: status, headers (lower-case names) and a JSON body.

    Attributes:
        status: The HTTP status code.
        body: The JSON body (``{"status": ..., ...}``); never holds a secret or an event.
        headers: Extra headers, as ``(name, value)`` pairs.
    """

    status: int
    body: Mapping[str, Any]
    headers: tuple[tuple[str, str], ...] = ()

    def encoded(self) -> bytes:
        """The body as compact UTF-8 JSON."""
        return encode_record(dict(self.body))

    def all_headers(self, length: int) -> list[tuple[str, str]]:
        """Every header of the answer, for a body of ``length`` bytes."""
        return [*_JSON, ("content-length", str(length)), *self.headers]


def _refused(status: int, reason: str, *headers: tuple[str, str]) -> Answer:
    return Answer(status, {"status": "refused", "reason": reason}, headers)


class WebhookReceiver:
    """Answers mParticle Webhook requests by forwarding their batch to Firehose.

    Safe to call from several threads at once: each thread forwards with a
    :class:`~streambridge.FirehoseForwarder` of its own, made by ``forwarders`` (they may
    share one boto3 client).

    Example::

        receiver = WebhookReceiver(
            lambda: FirehoseForwarder(client, settings), authorization="Basic c2VjcmV0"
        )
        answer = receiver.answer("POST", "/", {"authorization": "Basic c2VjcmV0"}, body)
    """

    def __init__(
        self,
        forwarders: Callable[[], FirehoseForwarder],
        *,
        authorization: str | None,
        dead_letter: DeadLetterTarget | None = None,
        max_body_bytes: int = MAX_BODY_BYTES,
        retry_after: int = 5,
        calls: int = 4,
        metrics: Metrics | None = None,
    ) -> None:
        """A receiver.

        Args:
            forwarders: Makes a forwarder (called once in each thread that answers, and once
                here). Its settings must not hold sessions back (Wait for Complete Batch:
                ``ValueError``): an answer is given only once every record was delivered.
            authorization: The ``Authorization`` header value mParticle sends (the Webhook
                integration's setting, e.g. ``"Basic …"``); None accepts any request (only
                behind something that authenticates).
            dead_letter: Where records not delivered are written (also answered 5xx).
            max_body_bytes: The most bytes of a body, and of a gzip body once decompressed.
            retry_after: Seconds in the ``Retry-After`` of a 503.
            calls: Shared sends to Firehose in flight at once: the records of requests
                waiting at the same moment go in the same calls (see
                :mod:`~streambridge.forwarder.gathering`).
            metrics: The measurements every forwarder it makes adds to (default: new ones,
                :attr:`metrics`).
        """
        if authorization is not None and not authorization.strip():
            msg = "the expected Authorization value is empty: give one, or none at all"
            raise ValueError(msg)
        #: What its forwarders did (docs/operations.md), all of them together.
        self.metrics = Metrics() if metrics is None else metrics

        def measured() -> FirehoseForwarder:
            forwarder = forwarders()
            forwarder.metrics = self.metrics
            return forwarder

        self._forwarders = measured
        self._expected = None if authorization is None else authorization.encode("utf-8")
        self.dead_letter = dead_letter
        self.max_body_bytes = max_body_bytes
        self.retry_after = retry_after
        self._local = threading.local()
        if self._forwarder().settings.wait_for_complete_batch:  # this thread's, made now
            msg = (
                "Wait for Complete Batch holds sessions in memory until their session_end: a "
                "receiver answers only once records are delivered, so it cannot use it"
            )
            raise ValueError(msg)
        # the gatherer keeps a forwarder per thread of its own, made by the same factory
        self._gatherer = Gatherer(measured, calls=calls, dead_letter=dead_letter)

    @property
    def delivery_stream(self) -> str:
        """The Firehose delivery stream its forwarders send to."""
        return self._forwarder().settings.delivery_stream_name

    def answer(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> Answer:
        """The answer to one request (returns once Firehose answered for its records).

        Args:
            method: The HTTP method.
            path: The request's path (any path takes batches; ``/healthz`` answers GET).
            headers: The request's headers, names in lower case.
            body: The whole body as received (gzip or not).
        """
        taken = self.take(method, path, headers, body)
        if isinstance(taken, Answer):
            return taken
        return self.conclude(taken, self._gatherer.deliver(taken.records))

    def take(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes
    ) -> Answer | Taken:
        """The first half of :meth:`answer`: the answer, or the batch's records to deliver.

        For a server that waits without a thread: hand :attr:`Taken.records` to
        :meth:`submit`, then give the outcome to :meth:`conclude`.
        """
        if method in ("GET", "HEAD") and path.rstrip("/") == "/healthz":
            return Answer(200, {"status": "ok"})
        if method != "POST":
            return _refused(405, f"{method} is not allowed: POST a batch", ("allow", "POST"))
        if not self._authorized(headers.get("authorization")):
            return _refused(401, "missing or wrong Authorization header")
        return self.take_body(headers.get("content-encoding", ""), body)

    def take_body(self, encoding: str, body: bytes) -> Answer | Taken:
        """A body's batch built into records, or the answer refusing it (400, 413, 415).

        No authorization: for sources AWS authenticates (a Kinesis event source mapping).
        """
        batch = self._batch(encoding, body)
        if isinstance(batch, Answer):
            return batch
        records, prepared = self._forwarder().prepare(batch)
        if prepared.rejected:
            return _refused(400, f"not an mParticle batch: {prepared.rejected[0].reason}")
        return Taken(records, prepared)

    def submit(self, records: Sequence[bytes], done: Callable[[Delivered], object]) -> None:
        """Deliver ``records`` with the other requests'; ``done(outcome)`` from another thread."""
        self._gatherer.submit(records, done)

    def close(self) -> None:
        """Wait for the sends in flight; stop their threads."""
        self._gatherer.close()

    def _authorized(self, given: str | None) -> bool:
        if self._expected is None:
            return True
        if given is None:
            return False
        return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), self._expected)

    def _batch(self, encoding: str, body: bytes) -> dict[str, Any] | Answer:
        """The body's batch, or the answer refusing it."""
        data = self._decompressed(encoding.strip().lower(), body)
        if isinstance(data, Answer):
            return data
        try:
            value = loads(data)
        except UnicodeDecodeError:
            return _refused(400, "the body is not UTF-8")
        except RecursionError:
            return _refused(400, "the body is nested too deeply")
        except ValueError as exc:
            return _refused(400, f"the body is not JSON: {str(exc)[:200]}")
        if not isinstance(value, dict):
            return _refused(400, "the body is not an mParticle batch (a JSON object)")
        return value

    def _decompressed(self, encoding: str, body: bytes) -> bytes | Answer:  # noqa: PLR0911
        """The body's JSON bytes, within the limit before and after gzip."""
        too_big = _refused(413, f"the body is over {self.max_body_bytes} bytes")
        if len(body) > self.max_body_bytes:
            return too_big
        if encoding in ("", "identity"):
            return body
        if encoding != "gzip":
            return _refused(415, f"Content-Encoding {encoding[:40]!r}: send JSON or gzip")
        unpacker = zlib.decompressobj(31)  # a gzip stream, decompressed within the limit
        try:
            data = unpacker.decompress(body, self.max_body_bytes + 1)
        except zlib.error as exc:
            return _refused(400, f"the body is not gzip: {exc}")
        if len(data) > self.max_body_bytes:
            return too_big
        if not unpacker.eof or unpacker.unused_data:
            return _refused(400, "the gzip body is cut short or has bytes after its end")
        return data

    def _forwarder(self) -> FirehoseForwarder:
        forwarder: FirehoseForwarder | None = getattr(self._local, "forwarder", None)
        if forwarder is None:
            forwarder = self._local.forwarder = self._forwarders()
        return forwarder

    def conclude(self, taken: Taken, delivered: Delivered) -> Answer:
        """The second half of :meth:`answer`: the answer, once the records were settled."""
        prepared = taken.prepared
        summary = {**_summary(prepared), "sent": delivered.sent}
        unsendable = prepared.failed  # records Firehose would refuse (too large): kept here
        if not delivered.undelivered and not unsendable:
            return Answer(200, {"status": "ok", **summary})
        kept = delivered.kept
        if unsendable:  # the worse of the two places wins
            here = self._gatherer.keep(list(unsendable), (), "", "")
            kept = here if kept in ("", "written") else kept
        codes = sorted({*delivered.codes, *(f.error_code for f in unsendable)})
        count = delivered.undelivered + len(unsendable)
        what = f"{count} record(s) of the batch were not delivered"
        logger.warning(
            "%s (%s); dead letter: %s",
            what,
            ", ".join(codes),
            kept,
            extra={
                "delivery_stream": self.delivery_stream,
                "records": count,
                "error_code": ",".join(codes),
            },
        )
        body = {
            "status": "not delivered",
            "reason": f"{what} ({', '.join(codes)}); send the batch again",
            "undelivered": count,
            "dead_letter": kept,
            **summary,
        }
        if delivered.retryable and not unsendable:
            return Answer(503, body, (("retry-after", str(self.retry_after)),))
        return Answer(502, body)


@attrs.frozen
class Taken:
    """A request taken: its batch's records, to deliver, and what else the batch gave.

    Attributes:
        records: The encoded records.
        prepared: The batch's counts (skipped, filtered, dropped, unsendable records).
    """

    records: list[bytes]
    prepared: ForwardResult


def _summary(result: ForwardResult) -> dict[str, int]:
    return {
        "sent": result.sent,
        "skipped": len(result.skipped),
        "filtered_events": result.filtered_events,
        "dropped_events": result.dropped_events,
    }
