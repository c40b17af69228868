"""Fault injection through botocore's real parser and retry machinery, against any endpoint.

:class:`FaultInjector` registers a ``before-send`` hook on a boto3 client: a call whose
operation has a fault queued gets that fault's HTTP response instead of going to the endpoint,
and botocore parses it as a real one. Needs only botocore: it works against the local AWS,
LocalStack or real AWS.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import attrs
from botocore.awsrequest import AWSPreparedRequest, AWSResponse
from botocore.compat import HTTPHeaders
from botocore.exceptions import EndpointConnectionError
from typing_extensions import Self

if TYPE_CHECKING:
    from botocore.client import BaseClient

__all__ = [
    "ConnectionFault",
    "ErrorFault",
    "EveryNth",
    "Fault",
    "FaultInjector",
    "Latency",
    "ResponseFault",
    "access_denied",
    "connection_error",
    "expired_iterator",
    "not_found",
    "service_unavailable",
    "throttling",
]


class Fault:
    """One injected answer to one call. Subclasses build the HTTP response (or raise)."""

    def respond(
        self, injector: FaultInjector, operation: str, request: AWSPreparedRequest
    ) -> AWSResponse | None:
        """Answer ``request`` instead of the endpoint (None: let it through untouched)."""
        raise NotImplementedError


@attrs.frozen
class EveryNth(Fault):
    """Answer every ``n``-th call with ``fault``; let the others through (for :meth:`always`).

    Attributes:
        n: The period.
        fault: The fault of every ``n``-th call.
    """

    n: int
    fault: Fault
    _count: list[int] = attrs.field(factory=lambda: [0], init=False, repr=False, eq=False)

    def respond(
        self, injector: FaultInjector, operation: str, request: AWSPreparedRequest
    ) -> AWSResponse | None:
        """The fault's answer on every ``n``-th call, else None."""
        self._count[0] += 1
        if self._count[0] % self.n:
            return None
        return self.fault.respond(injector, operation, request)


@attrs.frozen
class ErrorFault(Fault):
    """An AWS error response: HTTP ``status`` with ``{"__type": code, "message": message}``."""

    status: int
    code: str
    message: str = "injected by streambridge.testing"

    def respond(
        self, injector: FaultInjector, operation: str, request: AWSPreparedRequest
    ) -> AWSResponse:
        """Answer with the error document; botocore parses it into a ``ClientError``."""
        return json_response(request, self.status, {"__type": self.code, "message": self.message})


@attrs.frozen
class ResponseFault(Fault):
    """Any response: HTTP ``status`` with ``body`` as the JSON document."""

    status: int
    body: dict[str, Any]

    def respond(
        self, injector: FaultInjector, operation: str, request: AWSPreparedRequest
    ) -> AWSResponse:
        """Answer with ``body``."""
        return json_response(request, self.status, self.body)


@attrs.frozen
class ConnectionFault(Fault):
    """The connection fails, as if the endpoint could not be reached."""

    def respond(
        self, injector: FaultInjector, operation: str, request: AWSPreparedRequest
    ) -> AWSResponse:
        """Raise botocore's ``EndpointConnectionError``."""
        raise EndpointConnectionError(endpoint_url=request.url)


def throttling(code: str = "ThrottlingException") -> ErrorFault:
    """A throttling error (HTTP 400)."""
    return ErrorFault(400, code, "Rate exceeded")


def service_unavailable() -> ErrorFault:
    """Firehose's ``ServiceUnavailableException`` (HTTP 500): back off and retry."""
    return ErrorFault(500, "ServiceUnavailableException", "Slow down.")


def access_denied() -> ErrorFault:
    """``AccessDeniedException`` (HTTP 400), as for a missing IAM permission."""
    return ErrorFault(400, "AccessDeniedException", "User is not authorized to perform this")


def not_found() -> ErrorFault:
    """``ResourceNotFoundException`` (HTTP 400)."""
    return ErrorFault(400, "ResourceNotFoundException", "Stream not found")


def expired_iterator() -> ErrorFault:
    """Kinesis ``ExpiredIteratorException`` (HTTP 400), as for an iterator older than 5 minutes."""
    return ErrorFault(400, "ExpiredIteratorException", "Iterator expired")


def connection_error() -> ConnectionFault:
    """A failed connection."""
    return ConnectionFault()


class FaultInjector:
    """Queue faults for a client's next calls, answered through botocore's real parser.

    Registers a ``before-send`` hook on the client: a call whose operation has a fault queued
    gets that fault's response instead of going to the endpoint; botocore then parses it and
    runs its retry handler as for a real response. Calls with nothing queued go through.

    Every call's operation name is recorded in :attr:`calls`. With ``keep_requests=True``,
    :attr:`requests` also keeps each call's JSON parameters (blobs still base64-encoded, as on
    the wire) for :meth:`sent_records`; it is off by default, because a long load test through
    an injector would otherwise hold every record it ever sent.

    Use as a context manager, or call :meth:`close` to unregister.
    """

    def __init__(self, client: BaseClient, *, keep_requests: bool = False) -> None:
        """Hook into ``client`` (any boto3 client); ``keep_requests`` keeps every request."""
        self.client: Any = client
        self.keep_requests = keep_requests
        self._queues: dict[str, deque[Fault]] = {}
        self._always: dict[str, Fault] = {}
        self._local = threading.local()
        self.calls: list[str] = []
        self.requests: list[tuple[str, dict[str, Any]]] = []
        prefix = client.meta.service_model.endpoint_prefix
        self._event = f"before-send.{prefix}"
        hook: Any = self._hook
        client.meta.events.register(self._event, hook, unique_id=f"sb-faults-{id(self)}")

    def add(self, operation: str, *faults: Fault) -> FaultInjector:
        """Answer the next calls of ``operation`` (``"PutRecordBatch"``…) with ``faults``."""
        self._queues.setdefault(operation, deque()).extend(faults)
        return self

    def repeat(self, operation: str, fault: Fault, times: int) -> FaultInjector:
        """Answer the next ``times`` calls of ``operation`` with ``fault``."""
        return self.add(operation, *([fault] * times))

    def always(self, operation: str, fault: Fault | None) -> FaultInjector:
        """Answer every call of ``operation`` with ``fault`` once its queue is empty."""
        if fault is None:
            self._always.pop(operation, None)
        else:
            self._always[operation] = fault
        return self

    def sent_records(self) -> list[bytes]:
        """The data of every record put through this client, in the order sent.

        Covers ``PutRecord``, ``PutRecordBatch`` and ``PutRecords``; data is decoded from
        base64; a record sent twice (a retry) appears twice.

        Raises:
            ValueError: The injector was made without ``keep_requests=True``.
        """
        if not self.keep_requests:
            msg = "sent_records() needs FaultInjector(client, keep_requests=True)"
            raise ValueError(msg)
        out: list[bytes] = []
        for operation, params in self.requests:
            if operation == "PutRecord":
                entries = [params.get("Record") or params]
            elif operation in ("PutRecordBatch", "PutRecords"):
                entries = params.get("Records", [])
            else:
                continue
            out.extend(base64.b64decode(entry["Data"]) for entry in entries)
        return out

    def pending(self, operation: str) -> int:
        """Faults still queued for ``operation``."""
        return len(self._queues.get(operation, ()))

    @contextmanager
    def passthrough(self) -> Iterator[None]:
        """Within the block, calls from this thread go to the endpoint untouched."""
        self._local.off = True
        try:
            yield
        finally:
            self._local.off = False

    def close(self) -> None:
        """Unregister the hook."""
        hook: Any = self._hook
        self.client.meta.events.unregister(self._event, hook, unique_id=f"sb-faults-{id(self)}")

    def __enter__(self) -> Self:
        """Return self."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Unregister the hook."""
        self.close()

    def _hook(self, request: AWSPreparedRequest, **kwargs: Any) -> AWSResponse | None:
        if getattr(self._local, "off", False):
            return None
        operation = _operation_of(request)
        self.calls.append(operation)
        if self.keep_requests:
            body = request.body if isinstance(request.body, (bytes, str)) else b""
            try:
                params = json.loads(body) if body else {}
            except ValueError:
                params = {}
            self.requests.append((operation, params if isinstance(params, dict) else {}))
        queue = self._queues.get(operation)
        fault = queue.popleft() if queue else self._always.get(operation)
        if fault is None:
            return None
        return fault.respond(self, operation, request)


class Latency:
    """Every call of a client waits ``seconds`` before it goes out, as over a real network.

    A ``before-send`` hook registered first, so the wait comes before any fault answers; it
    sleeps in the calling thread, so calls from several threads overlap as they would on the
    network. :attr:`most_in_flight` is the most calls seen waiting at once. Use as a context
    manager, or call :meth:`close`.
    """

    def __init__(self, client: BaseClient, seconds: float) -> None:
        """Delay each of ``client``'s calls by ``seconds``."""
        self.client: Any = client
        self.seconds = seconds
        self.most_in_flight = 0
        self._in_flight = 0
        self._lock = threading.Lock()
        self._event = f"before-send.{client.meta.service_model.endpoint_prefix}"
        hook: Any = self._hook
        client.meta.events.register_first(self._event, hook, unique_id=f"sb-latency-{id(self)}")

    def _hook(self, **_: Any) -> None:
        with self._lock:
            self._in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self._in_flight)
        try:
            time.sleep(self.seconds)
        finally:
            with self._lock:
                self._in_flight -= 1

    def close(self) -> None:
        """Unregister the hook."""
        hook: Any = self._hook
        self.client.meta.events.unregister(self._event, hook, unique_id=f"sb-latency-{id(self)}")

    def __enter__(self) -> Self:
        """Return self."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Unregister the hook."""
        self.close()


def _operation_of(request: AWSPreparedRequest) -> str:
    target = request.headers.get("X-Amz-Target", b"")
    if isinstance(target, bytes):
        target = target.decode()
    return str(target).rsplit(".", 1)[-1]


class Body:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._data

    def read(self, *_: Any, **__: Any) -> bytes:
        return self._data


def json_response(request: AWSPreparedRequest, status: int, body: dict[str, Any]) -> AWSResponse:
    return AWSResponse(
        request.url,
        status,
        HTTPHeaders.from_dict(
            {"Content-Type": "application/x-amz-json-1.1", "x-amzn-RequestId": "streambridge-fault"}
        ),
        Body(json.dumps(body).encode()),
    )
