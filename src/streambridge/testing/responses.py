"""Answers that stand in for the endpoint's: spoilt ones, partly failed ones, and a null sink.

Each is a :class:`~streambridge.testing.Fault` to queue on a
:class:`~streambridge.testing.FaultInjector`; botocore parses what it answers as a real
response.
"""

from __future__ import annotations

import base64
import json
import random
import threading
from collections import deque
from typing import Any

import attrs
from botocore.awsrequest import AWSPreparedRequest, AWSResponse
from botocore.compat import HTTPHeaders
from botocore.httpsession import URLLib3Session

from streambridge.testing.faults import Body, Fault, FaultInjector, json_response

__all__ = ["MANGLES", "AcceptAll", "MalformedAnswer", "PartialFailure"]


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
            Body(body),
        )


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
        return json_response(request, 200, document)


@attrs.frozen
class AcceptAll(Fault):
    """Answer ``PutRecordBatch`` / ``PutRecord`` with success, without reaching the endpoint.

    A null sink for load tests and benchmarks: the client still serialises each request and
    parses each response with botocore's real machinery. Counts what it accepted.
    """

    accepted: list[int] = attrs.field(factory=lambda: [0, 0], repr=False, eq=False)
    _lock: threading.Lock = attrs.field(factory=threading.Lock, repr=False, eq=False)

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
            return json_response(request, 200, {"RecordId": "accepted", "Encrypted": False})
        if operation != "PutRecordBatch":
            msg = f"AcceptAll applies to PutRecordBatch and PutRecord, not {operation}"
            raise ValueError(msg)
        entries = body["Records"]
        self._count(entries)
        responses = [{"RecordId": "accepted"}] * len(entries)
        return json_response(
            request, 200, {"FailedPutCount": 0, "Encrypted": False, "RequestResponses": responses}
        )

    def _count(self, entries: list[dict[str, str]]) -> None:
        size = sum(len(base64.b64decode(e["Data"])) for e in entries)
        with self._lock:  # calls in flight answer from several threads
            self.accepted[0] += len(entries)
            self.accepted[1] += size
