"""Test helpers: an embedded local AWS, and fault injection that goes through botocore.

Import this module only in tests and demos: it needs the ``local`` extra (moto, flask,
flask-cors) for :func:`local_aws`; :class:`FaultInjector` needs only botocore and works against
any endpoint (the local one, LocalStack, real AWS). ``import streambridge`` never imports it.

Example::

    with local_aws() as aws:
        aws.create_delivery_stream("events")
        forwarder = FirehoseForwarder(aws.client("firehose"), settings)
        forwarder.forward_many(batches)
        assert len(aws.delivered("events")) == ...
"""

from __future__ import annotations

import base64
import gzip
import http.server
import json
import logging
import random
import threading
import time
import urllib.request
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import attrs
import boto3
from botocore.awsrequest import AWSPreparedRequest, AWSResponse
from botocore.compat import HTTPHeaders
from botocore.config import Config
from botocore.exceptions import EndpointConnectionError
from botocore.httpsession import URLLib3Session
from typing_extensions import Self

if TYPE_CHECKING:
    from botocore.client import BaseClient
    from mypy_boto3_firehose import FirehoseClient
    from mypy_boto3_s3 import S3Client

__all__ = [
    "AcceptAll",
    "ConnectionFault",
    "ErrorFault",
    "EveryNth",
    "FakeClock",
    "Fault",
    "FaultInjector",
    "LocalAWS",
    "LocalPostHog",
    "MalformedAnswer",
    "PartialFailure",
    "ResponseFault",
    "access_denied",
    "connection_error",
    "expired_iterator",
    "local_aws",
    "local_posthog",
    "not_found",
    "service_unavailable",
    "split_records",
    "throttling",
]

ACCOUNT_ID = "123456789012"  # moto's default account
_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


# --------------------------------------------------------------------------- local AWS


@attrs.frozen
class LocalAWS:
    """A running local AWS (moto's server on 127.0.0.1) and helpers to use it.

    Attributes:
        endpoint_url: ``http://127.0.0.1:<port>``.
        region: The region clients are made for.
    """

    endpoint_url: str
    region: str = "us-east-1"

    def client(self, service: str, *, max_attempts: int = 1) -> Any:
        """A boto3 client for ``service`` on this endpoint (botocore retries off by default)."""
        return boto3.client(  # type: ignore[call-overload]
            service,
            region_name=self.region,
            endpoint_url=self.endpoint_url,
            config=Config(retries={"mode": "standard", "total_max_attempts": max_attempts}),
            **_CREDENTIALS,
        )

    def environment(self) -> dict[str, str]:
        """Environment variables that point any AWS SDK or tool (a subprocess) at this endpoint.

        Merge them into ``os.environ`` for a subprocess:
        ``subprocess.run(cmd, env={**os.environ, **aws.environment()})``.
        """
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": _CREDENTIALS["aws_access_key_id"],
            "AWS_SECRET_ACCESS_KEY": _CREDENTIALS["aws_secret_access_key"],
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
        }

    def reset(self) -> None:
        """Forget every stream, bucket and object (moto's ``/moto-api/reset``)."""
        request = urllib.request.Request(  # noqa: S310 - always our own http://127.0.0.1 URL
            f"{self.endpoint_url}/moto-api/reset", method="POST"
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            response.read()

    def create_delivery_stream(self, name: str, *, bucket: str | None = None) -> str:
        """Create a Direct PUT delivery stream writing to a new S3 bucket; return the bucket."""
        bucket = bucket or f"{name.lower()}-bucket"
        s3: S3Client = self.client("s3")
        s3.create_bucket(Bucket=bucket)
        firehose: FirehoseClient = self.client("firehose")
        firehose.create_delivery_stream(
            DeliveryStreamName=name,
            DeliveryStreamType="DirectPut",
            ExtendedS3DestinationConfiguration={
                "RoleARN": f"arn:aws:iam::{ACCOUNT_ID}:role/firehose",
                "BucketARN": f"arn:aws:s3:::{bucket}",
                "Prefix": f"{name}/",
            },
        )
        return bucket

    def create_stream(self, name: str, shards: int = 1) -> None:
        """Create a Kinesis Data Stream with ``shards`` shards."""
        self.client("kinesis").create_stream(StreamName=name, ShardCount=shards)

    def put_records(
        self, name: str, records: Iterable[bytes | str | dict[str, Any]], *, key: str | None = None
    ) -> int:
        """Put records on a Kinesis stream (dicts as JSON); spread over shards unless ``key``.

        Returns:
            How many records were put.
        """
        kinesis = self.client("kinesis")
        entries = [
            {
                "Data": json.dumps(item).encode() if isinstance(item, dict) else item,
                "PartitionKey": key or f"pk-{n}",
            }
            for n, item in enumerate(records)
        ]
        for start in range(0, len(entries), 500):
            kinesis.put_records(StreamName=name, Records=entries[start : start + 500])
        return len(entries)

    def read_stream(self, name: str) -> list[bytes]:
        """Every record's data on a Kinesis stream, shard by shard, from the start."""
        kinesis = self.client("kinesis")
        out: list[bytes] = []
        for shard in kinesis.list_shards(StreamName=name)["Shards"]:
            iterator = kinesis.get_shard_iterator(
                StreamName=name, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
            )["ShardIterator"]
            while iterator:
                page = kinesis.get_records(ShardIterator=iterator, Limit=10_000)
                out.extend(record["Data"] for record in page["Records"])
                if not page["Records"] or page.get("MillisBehindLatest") == 0:
                    break
                iterator = page.get("NextShardIterator")
        return out

    def delivered_objects(self, name: str, *, bucket: str | None = None) -> list[bytes]:
        """The S3 objects the delivery stream wrote (moto: one per call, in no set order)."""
        bucket = bucket or f"{name.lower()}-bucket"
        s3: S3Client = self.client("s3")
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{name}/")
        return [
            s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
            for page in pages
            for item in page.get("Contents", [])
        ]

    def delivered(self, name: str, *, bucket: str | None = None) -> list[Any]:
        """Every JSON record the delivery stream delivered, decoded (order across calls unset)."""
        return [
            record
            for body in self.delivered_objects(name, bucket=bucket)
            for record in split_records(body)
        ]


def split_records(body: bytes) -> list[Any]:
    """Split concatenated JSON records, newline-delimited or not, into decoded values."""
    decoder = json.JSONDecoder()
    text = body.decode("utf-8")
    out: list[Any] = []
    position = 0
    while True:
        while position < len(text) and text[position] in " \t\r\n":
            position += 1
        if position >= len(text):
            return out
        value, position = decoder.raw_decode(text, position)
        out.append(value)


@contextmanager
def local_aws(*, region: str = "us-east-1") -> Iterator[LocalAWS]:
    """Run moto's server on 127.0.0.1 (a free port) for the duration of the block.

    State is process-global in moto: call :meth:`LocalAWS.reset` between tests.
    """
    from moto.server import ThreadedMotoServer  # noqa: PLC0415 - the `local` extra

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield LocalAWS(endpoint_url=f"http://{host}:{port}", region=region)
    finally:
        server.stop()


# --------------------------------------------------------------------------- local PostHog


class LocalPostHog:
    """A stand-in for PostHog's capture API (``POST /batch/``) on 127.0.0.1, for tests.

    It answers 200 and keeps the events of every accepted request in :attr:`events`, unless
    told otherwise: :meth:`answer` queues statuses for the next requests, :meth:`down_for`
    answers 503 for a while, :attr:`status` is the answer once those are used up,
    :attr:`max_batch` answers 413 to a request with more events, and :attr:`refuse` answers
    400 to a request holding an event it returns True for. Start it with
    :func:`local_posthog`.

    Attributes:
        url: ``http://127.0.0.1:<port>``: pass it as the PostHog host.
        events: The events of the requests answered 200, in order (duplicates kept).
        requests: Requests received.
        api_keys: The ``api_key`` of each request.
    """

    def __init__(self) -> None:
        """An idle stand-in; :func:`local_posthog` serves it."""
        self.url = ""
        self.events: list[dict[str, Any]] = []
        self.requests = 0
        self.api_keys: list[str] = []
        self.status = 200
        self.max_batch: int | None = None
        self.refuse: Callable[[dict[str, Any]], bool] | None = None
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

    def _respond(self, body: dict[str, Any]) -> int:
        batch = body.get("batch")
        events = batch if isinstance(batch, list) else []
        with self._lock:
            self.requests += 1
            self.api_keys.append(str(body.get("api_key")))
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
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if self.headers.get("Content-Encoding") == "gzip":
                raw = gzip.decompress(raw)
            try:
                body = json.loads(raw)
            except ValueError:
                body = {}
            status = stand_in._respond(body if isinstance(body, dict) else {})  # noqa: SLF001
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


# --------------------------------------------------------------------------- time


class FakeClock:
    """A monotonic clock that moves only when :meth:`sleep` (or :meth:`advance`) is called.

    Pass it as ``clock=clock, sleep=clock.sleep`` to a forwarder or an importer: backoff and
    pacing then run in no real time, in the same order as with real time.
    """

    def __init__(self, start: float = 0.0) -> None:
        """Start at ``start`` seconds."""
        self.now = start
        self.slept: list[float] = []

    def __call__(self) -> float:
        """The current time."""
        return self.now

    def sleep(self, seconds: float) -> None:
        """Move time forward by ``seconds`` (recorded in :attr:`slept`)."""
        self.slept.append(seconds)
        self.now += max(seconds, 0.0)

    def advance(self, seconds: float) -> None:
        """Move time forward without recording a sleep."""
        self.now += seconds


# --------------------------------------------------------------------------- faults


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
        return _json_response(request, self.status, {"__type": self.code, "message": self.message})


@attrs.frozen
class ResponseFault(Fault):
    """Any response: HTTP ``status`` with ``body`` as the JSON document."""

    status: int
    body: dict[str, Any]

    def respond(
        self, injector: FaultInjector, operation: str, request: AWSPreparedRequest
    ) -> AWSResponse:
        """Answer with ``body``."""
        return _json_response(request, self.status, self.body)


#: How :class:`MalformedAnswer` spoils a body.
MANGLES = ("truncate", "not_json", "empty", "other_shape")


@attrs.frozen
class MalformedAnswer(Fault):
    """An HTTP 200 whose body is not a well-formed answer, as a broken proxy or network gives.

    With ``deliver=True`` (the default) the request really goes to the endpoint first, over
    HTTP, so its effect happens (records are stored, an iterator is advanced…) and only the
    answer is spoilt on its way back: the caller cannot know what happened. With
    ``deliver=False`` the endpoint never sees the request. With ``inner``, that fault answers
    first (e.g. a :class:`PartialFailure`, so that some records were not stored) and its
    answer is spoilt.

    Attributes:
        mangle: ``"truncate"`` (the body cut at ``keep``, a fraction of its length),
            ``"not_json"`` (an HTML page), ``"empty"`` (no body), or ``"other_shape"`` (JSON
            that is not this operation's answer).
        keep: For ``"truncate"``: the share of the body kept.
        deliver: Whether the endpoint gets the request.
        inner: A fault whose answer is spoilt instead of the endpoint's.
    """

    mangle: str = "truncate"
    keep: float = 0.5
    deliver: bool = True
    inner: Fault | None = None

    def __attrs_post_init__(self) -> None:
        """Check the mangle."""
        if self.mangle not in MANGLES:
            msg = f"mangle must be one of {MANGLES}, got {self.mangle!r}"
            raise ValueError(msg)

    def respond(
        self, injector: FaultInjector, operation: str, request: AWSPreparedRequest
    ) -> AWSResponse:
        """Send the request for real (when ``deliver``), then answer 200 with a spoilt body."""
        body = b'{"ResponseMetadata": {}}'
        inner = self.inner.respond(injector, operation, request) if self.inner else None
        if inner is not None:
            body = inner.content
        elif self.deliver:
            body = URLLib3Session().send(request).content
        if self.mangle == "truncate":
            body = body[: int(len(body) * self.keep)]
        elif self.mangle == "not_json":
            body = b"<html><body>502 Bad Gateway</body></html>"
        elif self.mangle == "empty":
            body = b""
        else:
            body = b'{"Unexpected": true}'
        return AWSResponse(
            request.url,
            200,
            HTTPHeaders.from_dict(
                {"Content-Type": "application/x-amz-json-1.1", "Content-Length": "999999"}
            ),
            _Body(body),
        )


@attrs.frozen
class ConnectionFault(Fault):
    """The connection fails, as if the endpoint could not be reached."""

    def respond(
        self, injector: FaultInjector, operation: str, request: AWSPreparedRequest
    ) -> AWSResponse:
        """Raise botocore's ``EndpointConnectionError``."""
        raise EndpointConnectionError(endpoint_url=request.url)


@attrs.frozen
class PartialFailure(Fault):
    """Fail a fraction of a ``PutRecordBatch`` / ``PutRecords`` call's entries; deliver the rest.

    The entries that succeed are sent to the endpoint through the same client (so they are
    really stored, and the successful response entries are the endpoint's own); the failed
    ones get ``error_code`` in a ``200`` response, as Firehose and Kinesis do. For Kinesis,
    pass ``error_code="ProvisionedThroughputExceededException"``.

    Attributes:
        fraction: Share of entries to fail, drawn independently per entry.
        error_code: The per-entry ``ErrorCode``.
        seed: Seed of the draw, for repeatable tests.
    """

    fraction: float = 0.3
    error_code: str = "ServiceUnavailableException"
    error_message: str = "Slow down."
    seed: int = 0
    _rng: random.Random = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        """Seed the draw."""
        object.__setattr__(self, "_rng", random.Random(self.seed))

    def respond(
        self, injector: FaultInjector, operation: str, request: AWSPreparedRequest
    ) -> AWSResponse:
        """Deliver the lucky entries for real and answer with a mixed response."""
        if operation not in ("PutRecordBatch", "PutRecords"):
            msg = f"PartialFailure applies to PutRecordBatch and PutRecords, not {operation}"
            raise ValueError(msg)
        if not isinstance(request.body, (bytes, str)):
            msg = "PartialFailure needs a JSON request body"
            raise TypeError(msg)
        body = json.loads(request.body)
        entries = body["Records"]
        failing = [self._rng.random() < self.fraction for _ in entries]
        passed = [
            {**entry, "Data": base64.b64decode(entry["Data"])}
            for entry, fail in zip(entries, failing, strict=True)
            if not fail
        ]
        answers: deque[dict[str, Any]] = deque()
        if passed:
            with injector.passthrough():
                if operation == "PutRecordBatch":
                    real = injector.client.put_record_batch(
                        DeliveryStreamName=body["DeliveryStreamName"], Records=passed
                    )
                    answers.extend(real["RequestResponses"])
                else:
                    real = injector.client.put_records(
                        StreamName=body["StreamName"], Records=passed
                    )
                    answers.extend(real["Records"])
        failure = {"ErrorCode": self.error_code, "ErrorMessage": self.error_message}
        responses = [failure if fail else answers.popleft() for fail in failing]
        if operation == "PutRecordBatch":
            document = {
                "FailedPutCount": sum(failing),
                "Encrypted": False,
                "RequestResponses": responses,
            }
        else:
            document = {"FailedRecordCount": sum(failing), "Records": responses}
        return _json_response(request, 200, document)


@attrs.frozen
class AcceptAll(Fault):
    """Answer ``PutRecordBatch`` / ``PutRecord`` with success, without reaching the endpoint.

    A null sink for load tests and benchmarks: the client still serialises each request and
    parses each response with botocore's real machinery. Counts what it accepted.
    """

    accepted: list[int] = attrs.field(factory=lambda: [0, 0], repr=False, eq=False)

    @property
    def records(self) -> int:
        """Records accepted so far."""
        return self.accepted[0]

    @property
    def data_bytes(self) -> int:
        """Record bytes accepted so far (before base64)."""
        return self.accepted[1]

    def respond(
        self, injector: FaultInjector, operation: str, request: AWSPreparedRequest
    ) -> AWSResponse:
        """Answer with one success entry per record."""
        if not isinstance(request.body, (bytes, str)):
            msg = "AcceptAll needs a JSON request body"
            raise TypeError(msg)
        body = json.loads(request.body)
        if operation == "PutRecord":
            self._count([body["Record"]])
            return _json_response(request, 200, {"RecordId": "accepted", "Encrypted": False})
        if operation != "PutRecordBatch":
            msg = f"AcceptAll applies to PutRecordBatch and PutRecord, not {operation}"
            raise ValueError(msg)
        entries = body["Records"]
        self._count(entries)
        responses = [{"RecordId": "accepted"}] * len(entries)
        return _json_response(
            request, 200, {"FailedPutCount": 0, "Encrypted": False, "RequestResponses": responses}
        )

    def _count(self, entries: list[dict[str, str]]) -> None:
        self.accepted[0] += len(entries)
        self.accepted[1] += sum(len(base64.b64decode(e["Data"])) for e in entries)


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

    Every call is recorded: :attr:`calls` lists the operation names, :attr:`requests` the
    operation and its JSON parameters (blobs still base64-encoded, as on the wire).

    Use as a context manager, or call :meth:`close` to unregister.
    """

    def __init__(self, client: BaseClient) -> None:
        """Hook into ``client`` (any boto3 client)."""
        self.client: Any = client
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
        """
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


def _operation_of(request: AWSPreparedRequest) -> str:
    target = request.headers.get("X-Amz-Target", b"")
    if isinstance(target, bytes):
        target = target.decode()
    return str(target).rsplit(".", 1)[-1]


class _Body:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._data

    def read(self, *_: Any, **__: Any) -> bytes:
        return self._data


def _json_response(request: AWSPreparedRequest, status: int, body: dict[str, Any]) -> AWSResponse:
    return AWSResponse(
        request.url,
        status,
        HTTPHeaders.from_dict(
            {"Content-Type": "application/x-amz-json-1.1", "x-amzn-RequestId": "streambridge-fault"}
        ),
        _Body(json.dumps(body).encode()),
    )
