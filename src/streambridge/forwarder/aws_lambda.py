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

from streambridge._emf import VARIABLES as EMF_VARIABLES
from streambridge._emf import EmfWriter
from streambridge._environment import (
    Configured,
    check_variables,
    dead_letter_from,
    flag,
    set_log_level,
)
from streambridge._lambda_records import (
    UNKNOWN,
    LambdaRecord,
    UnreadableRecord,
    batch_item_failures,
    is_kinesis_event,
    read_record,
    seconds_left,
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
    "STREAMBRIDGE_ROLE_ARN": "a role (in another account) to assume for Firehose, with the "
    "function's own role; refreshed before it expires",
    "STREAMBRIDGE_EXTERNAL_ID": "the External ID that role's trust policy requires",
    "STREAMBRIDGE_ROLE_SESSION_NAME": "the role session's name (default streambridge)",
    **EMF_VARIABLES,
}


class ForwarderLambdaHandler:
    """The Lambda handler: HTTP events and Kinesis events, by their shape.

    Attributes:
        receiver: The request -> answer function (and the Firehose delivery behind it).
    """

    def __init__(
        self, receiver: WebhookReceiver, *, time_margin: float = 5.0, emf: bool = True
    ) -> None:
        """A handler forwarding with ``receiver``, keeping ``time_margin`` seconds in hand."""
        self.receiver = receiver
        self.time_margin = time_margin
        #: Prints each invocation's metrics (CloudWatch EMF), or None.
        self.emf = EmfWriter.from_environment("forwarder") if emf else None

    def __call__(self, event: Any, context: Any = None) -> dict[str, Any]:
        """Answer one invocation.

        Raises:
            ValueError: The event is neither an HTTP request nor Kinesis records.
        """
        before = self.receiver.metrics.snapshot() if self.emf is not None else None
        try:
            if isinstance(event, Mapping) and ("requestContext" in event or "httpMethod" in event):
                return self._http(event)
            if is_kinesis_event(event):
                return self._kinesis(event["Records"], context)
        finally:
            if self.emf is not None and before is not None:
                added = self.receiver.metrics.snapshot().since(before)
                self.emf.write(added, self.receiver.delivery_stream)
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

    def _kinesis(self, raws: list[Any], context: Any) -> dict[str, Any]:
        """Every record's batch forwarded; the failures from the first not delivered.

        A record not settled when only ``time_margin`` seconds are left counts as not
        delivered (the mapping sends it again: a duplicate at worst, never a loss).
        """
        records = [read_record(raw, "") for raw in raws]
        taken: dict[int, Taken] = {}
        outcomes: dict[int, Delivered] = {}
        settled = threading.Condition()
        failed: list[int] = []
        for index, record in enumerate(records):
            piece = self._take(record)
            if isinstance(piece, Taken):
                taken[index] = piece
                self.receiver.submit(piece.records, _keeper(outcomes, settled, index))
            elif not piece:  # no batch, and its dead letter could not be written
                failed.append(index)
        with settled:
            settled.wait_for(
                lambda: len(outcomes) == len(taken), timeout=seconds_left(context, self.time_margin)
            )
            done = dict(outcomes)
        for index, piece in taken.items():
            if index not in done:
                logger.warning(
                    "record %d not settled within the time margin; left for a retry",
                    index,
                    extra={**records[index].identity(), "batch_index": index},
                )
                failed.append(index)
                continue
            answer = self.receiver.conclude(piece, done[index])
            if answer.status != 200 and not _kept_for_good(answer):  # noqa: PLR2004
                failed.append(index)
        first = min(failed, default=len(records))
        retry = [r.sequence for r in records[first:] if r.sequence != UNKNOWN]
        if failed and not retry:  # only records with no sequence number: all of it again
            msg = "a record without a sequence number was not kept: the whole batch is retried"
            raise RuntimeError(msg)
        return batch_item_failures(retry)

    def _take(self, record: LambdaRecord | UnreadableRecord) -> Taken | bool:
        """The record's batch built into records; else whether it was kept (logged, written)."""
        if isinstance(record, LambdaRecord):
            piece = self.receiver.take_body("", record.data)
            if isinstance(piece, Taken):
                return piece
            reason, data = str(piece.body.get("reason")), record.data
        else:
            reason, data = record.reason, record.raw
        identity = record.identity()
        logger.warning("record skipped: %s (%s)", reason, json.dumps(identity), extra=identity)
        letters = self.receiver.dead_letter
        if letters is not None:
            try:
                letters.write_undelivered([data], "NotABatch", reason)
            except DeadLetterError:
                logger.warning(
                    "the skipped record could not be written to the dead letter", extra=identity
                )
                return False
        return True


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


def make_handler(
    receiver: WebhookReceiver, *, time_margin: float = 5.0, emf: bool = True
) -> ForwarderLambdaHandler:
    """A Lambda handler forwarding with ``receiver`` (see the module's text).

    Args:
        receiver: The request -> answer function, and the Firehose delivery behind it.
        time_margin: Seconds of the invocation kept in hand: Kinesis records not settled
            when only this much is left are reported in ``batchItemFailures``.
        emf: Print what each invocation did (``receiver.metrics``) as one CloudWatch
            Embedded Metric Format line (docs/operations.md), unless
            ``STREAMBRIDGE_METRICS=off``; False: never.
    """
    return ForwarderLambdaHandler(receiver, time_margin=time_margin, emf=emf)


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
    from streambridge._aws import assumed_role, build_client  # noqa: PLC0415

    role = assumed_role(
        env.get("STREAMBRIDGE_ROLE_ARN", "").strip() or None,
        env.get("STREAMBRIDGE_EXTERNAL_ID", "").strip() or None,
        env.get("STREAMBRIDGE_ROLE_SESSION_NAME", "").strip() or None,
    )
    client = build_client(  # botocore's retries off: the forwarder retries per record
        "firehose", region=None, access_key_id=None, secret_access_key=None, role=role, pool=10
    )
    letters = dead_letter_from(env)

    def forwarder() -> FirehoseForwarder:
        return FirehoseForwarder(client, settings, on_drop=letters, max_in_flight=1)

    receiver = WebhookReceiver(forwarder, authorization=authorization, dead_letter=letters)
    built = ForwarderLambdaHandler(receiver, emf=False)
    built.emf = EmfWriter.from_environment("forwarder", env)
    return built


_configured = Configured(handler_from_environment)


def handler(event: Any, context: Any = None) -> dict[str, Any]:
    """The zero-code Lambda handler: ``streambridge.forwarder.aws_lambda.handler``.

    Configured from environment variables on its first invocation (:data:`ENVIRONMENT`); a
    bad configuration raises :class:`~streambridge.errors.ConfigurationError` on every
    invocation, so the event is retried, not dropped, once the configuration is fixed.
    """
    return _configured.get()(event, context)
