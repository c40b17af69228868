"""AWS Lambda for the forwarder: mParticle's data to Firehose, over HTTP or from Kinesis.

One handler recognises the event it is given:

* **HTTP** — a Lambda function URL or API Gateway (REST v1 and HTTP v2 payloads, base64 bodies
  too): mParticle's Webhook integration. The answers are ``streambridge serve``'s, from the
  same :class:`~streambridge.forwarder.webhook.WebhookReceiver`: 2xx only once Firehose has
  every record of the batch.
* **Kinesis event source mapping** — mParticle's Amazon Kinesis integration puts each batch as
  one record: each record's data is forwarded as a batch, the records' Firehose records in
  shared calls, and ``batchItemFailures`` (ReportBatchItemFailures) name the first record whose
  Firehose records were not all delivered and every record after it, so the mapping retries
  from there. A record that is not a batch is skipped: logged with its stream, shard,
  sequence number and reason, and written to the dead letter when there is one.

Two ways in: :func:`make_handler` for code, and :data:`handler`, configured from environment
variables (:data:`ENVIRONMENT`): the function's handler is
``streambridge.forwarder.aws_lambda.handler``.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import threading
from collections.abc import Mapping
from typing import Any

from streambridge._environment import (
    Configured,
    check_variables,
    dead_letter_from,
    flag,
    set_log_level,
)
from streambridge.errors import ConfigurationError, DeadLetterError
from streambridge.forwarder.gathering import Delivered
from streambridge.forwarder.webhook import Answer, Taken, WebhookReceiver

__all__ = ["ENVIRONMENT", "ForwarderLambdaHandler", "handler", "handler_from_environment"]

logger = logging.getLogger("streambridge.lambda")

#: The environment variables :data:`handler` reads, and what each is for.
ENVIRONMENT = {
    "STREAMBRIDGE_DELIVERY_STREAM": "the Firehose delivery stream; required",
    "STREAMBRIDGE_MPARTICLE_SETTINGS": "the connection settings as a JSON object by mParticle "
    'display name: {"Send as Batch": false, "Include Metadata": true, ...}',
    "STREAMBRIDGE_AUTHORIZATION": "the Authorization header value mParticle's Webhook sends "
    "(HTTP events); required for them unless STREAMBRIDGE_NO_AUTH is true",
    "STREAMBRIDGE_NO_AUTH": "'true': take HTTP requests without an Authorization header",
    "STREAMBRIDGE_DEAD_LETTER": "where records not delivered and records that are no batch go: "
    "s3://bucket/prefix or an SQS queue URL",
    "STREAMBRIDGE_LOG_LEVEL": "DEBUG, INFO (default), WARNING or ERROR",
}


class ForwarderLambdaHandler:
    """The Lambda handler: HTTP events and Kinesis events, by their shape.

    Attributes:
        receiver: The request -> answer function (and the Firehose delivery behind it).
    """

    def __init__(self, receiver: WebhookReceiver) -> None:
        """A handler forwarding with ``receiver``."""
        self.receiver = receiver

    def __call__(self, event: Any, context: Any = None) -> dict[str, Any]:
        """Answer one invocation.

        Raises:
            ValueError: The event is neither an HTTP request nor Kinesis records.
        """
        if isinstance(event, Mapping) and ("requestContext" in event or "httpMethod" in event):
            return self._http(event)
        records = event.get("Records") if isinstance(event, Mapping) else None
        if isinstance(records, list) and all(
            isinstance(r, Mapping) and r.get("eventSource") == "aws:kinesis" for r in records
        ):
            return self._kinesis(records)
        msg = "the event is neither an HTTP request (function URL, API Gateway) nor Kinesis records"
        raise ValueError(msg)

    def _http(self, event: Mapping[str, Any]) -> dict[str, Any]:
        context = event.get("requestContext") or {}
        method = event.get("httpMethod") or (context.get("http") or {}).get("method") or "GET"
        path = event.get("rawPath") or event.get("path") or "/"
        headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
        raw = event.get("body") or ""
        if event.get("isBase64Encoded"):
            try:
                body = base64.b64decode(raw, validate=True)
            except (binascii.Error, ValueError):
                return _http_answer(Answer(400, {"status": "refused", "reason": "bad base64"}))
        else:
            body = raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else b""
        return _http_answer(self.receiver.answer(str(method).upper(), str(path), headers, body))

    def _kinesis(self, records: list[Mapping[str, Any]]) -> dict[str, Any]:
        """Every record's batch forwarded; the failures from the first not delivered."""
        taken: list[Taken | None] = []
        outcomes: dict[int, Delivered] = {}
        settled = threading.Condition()
        for index, record in enumerate(records):
            piece = self._take(record)
            taken.append(piece)
            if piece is not None:
                self.receiver.submit(piece.records, _keeper(outcomes, settled, index))
        with settled:
            settled.wait_for(lambda: len(outcomes) == sum(t is not None for t in taken))
        failed = []
        for index, piece in enumerate(taken):
            if piece is not None:
                answer = self.receiver.conclude(piece, outcomes[index])
                if answer.status != 200 and not _kept_for_good(answer):  # noqa: PLR2004
                    failed.append(index)
        first = failed[0] if failed else len(records)
        return {
            "batchItemFailures": [
                {"itemIdentifier": r["kinesis"]["sequenceNumber"]} for r in records[first:]
            ]
        }

    def _take(self, record: Mapping[str, Any]) -> Taken | None:
        """The record's batch built into records; None (logged, kept) when it is no batch."""
        kinesis = record.get("kinesis") or {}
        try:
            data = base64.b64decode(kinesis.get("data", ""), validate=True)
        except (binascii.Error, ValueError):
            data = b""
        piece = self.receiver.take_body("", data)
        if isinstance(piece, Taken):
            return piece
        reason = str(piece.body.get("reason"))
        identity = {
            "stream": str(record.get("eventSourceARN", "")).rsplit("/", 1)[-1],
            "shard": str(record.get("eventID", "")).split(":", 1)[0],
            "sequence_number": kinesis.get("sequenceNumber"),
        }
        logger.warning("record skipped: %s (%s)", reason, json.dumps(identity), extra=identity)
        letters = self.receiver.dead_letter
        if letters is not None:
            try:
                letters.write_undelivered([data], "NotABatch", reason)
            except DeadLetterError:
                logger.warning("the skipped record could not be written to the dead letter")
        return None


def _kept_for_good(answer: Answer) -> bool:
    """Records Firehose will never take, written to the dead letter: retrying cannot help."""
    return answer.status == 502 and answer.body.get("dead_letter") == "written"  # noqa: PLR2004


def _keeper(outcomes: dict[int, Delivered], settled: threading.Condition, index: int) -> Any:
    def keep(delivered: Delivered) -> None:
        with settled:
            outcomes[index] = delivered
            settled.notify_all()

    return keep


def _http_answer(answer: Answer) -> dict[str, Any]:
    """An answer as Lambda returns it to a function URL or API Gateway."""
    data = answer.encoded()
    return {
        "statusCode": answer.status,
        "headers": dict(answer.all_headers(len(data))),
        "body": data.decode("utf-8"),
        "isBase64Encoded": False,
    }


def make_handler(receiver: WebhookReceiver) -> ForwarderLambdaHandler:
    """A Lambda handler forwarding with ``receiver`` (see the module's text)."""
    return ForwarderLambdaHandler(receiver)


def handler_from_environment(environ: Mapping[str, str] | None = None) -> ForwarderLambdaHandler:
    """The handler :data:`handler` uses, built from environment variables (:data:`ENVIRONMENT`).

    Raises:
        ConfigurationError: A required variable is missing, a value is bad, or a
            ``STREAMBRIDGE_`` variable is unknown (a misspelling would otherwise be ignored).
    """
    from streambridge.forwarder.forwarder import FirehoseForwarder  # noqa: PLC0415
    from streambridge.forwarder.settings import ForwarderSettings  # noqa: PLC0415

    env = os.environ if environ is None else environ
    check_variables(env, ENVIRONMENT, ("STREAMBRIDGE_DELIVERY_STREAM",))
    set_log_level(env)
    no_auth = flag(env, "STREAMBRIDGE_NO_AUTH")
    authorization = env.get("STREAMBRIDGE_AUTHORIZATION", "").strip() or None
    if authorization is None and not no_auth:
        msg = "STREAMBRIDGE_AUTHORIZATION is not set, nor STREAMBRIDGE_NO_AUTH=true"
        raise ConfigurationError(f"{msg} ({ENVIRONMENT['STREAMBRIDGE_AUTHORIZATION']})")
    try:
        mapping = json.loads(env.get("STREAMBRIDGE_MPARTICLE_SETTINGS") or "{}")
    except ValueError as exc:
        raise ConfigurationError(f"STREAMBRIDGE_MPARTICLE_SETTINGS is not JSON: {exc}") from None
    if not isinstance(mapping, dict):
        raise ConfigurationError("STREAMBRIDGE_MPARTICLE_SETTINGS must be a JSON object")
    mapping["Delivery Stream Name"] = env["STREAMBRIDGE_DELIVERY_STREAM"].strip()
    settings = ForwarderSettings.from_mparticle(mapping)
    import boto3  # noqa: PLC0415 - in every Lambda runtime
    from botocore.config import Config  # noqa: PLC0415

    client = boto3.client("firehose", config=Config(retries={"total_max_attempts": 1}))
    letters = dead_letter_from(env)

    def forwarder() -> FirehoseForwarder:
        return FirehoseForwarder(client, settings, on_drop=letters, max_in_flight=1)

    receiver = WebhookReceiver(forwarder, authorization=authorization, dead_letter=letters)
    return ForwarderLambdaHandler(receiver)


_configured = Configured(handler_from_environment)


def handler(event: Any, context: Any = None) -> dict[str, Any]:
    """The zero-code Lambda handler: ``streambridge.forwarder.aws_lambda.handler``.

    Configured from environment variables on its first invocation (:data:`ENVIRONMENT`); a
    bad configuration raises :class:`~streambridge.errors.ConfigurationError` on every
    invocation, so the event is retried, not dropped, once the configuration is fixed.
    """
    return _configured.get()(event, context)
