"""AWS Lambda: a handler for Kinesis event source mappings, with ReportBatchItemFailures.

The event source mapping owns the shard leases, the order and the checkpoints; this module
turns each invocation's records into PostHog events with the importer's own conversion
(:class:`~streambridge.RecordConverter`: KPL de-aggregation, keys, mappings, uuids), so a
record gives the same event and uuid here as through :class:`~streambridge.KinesisImporter`
or the KCL processor. Two ways in:

* :func:`make_handler` for code: ``handler = make_handler(settings, sink)``;
* :data:`handler`, configured from environment variables for a deployment with no code of
  your own: the function's handler is ``streambridge.importer.aws_lambda.handler``
  (docs/lambda.md lists the variables).

What comes back is ``{"batchItemFailures": [{"itemIdentifier": <sequenceNumber>}, ...]}``:

* a record that cannot become an event (or whose event PostHog refuses) is skipped: one
  structured log line names its stream, shard, sequence number and reason, and ``on_skip``
  sees it; it never fails the batch — unless ``on_skip`` is a dead-letter target
  (:class:`~streambridge.S3DeadLetters`, :class:`~streambridge.SQSDeadLetters`;
  ``STREAMBRIDGE_DEAD_LETTER``) that cannot write it: then it is reported for a retry;
* events go to the sink in order, a few records at a time; when the sink fails, the first
  record whose events it did not accept and every record after it are reported, so the event
  source mapping retries from there (its checkpoint is the lowest failed sequence number);
* with less than ``time_margin`` seconds of the invocation left, nothing more is started and
  the rest is reported the same way.

Stream and shard come from each record's ``eventSourceARN`` and ``eventID``.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

import attrs

from streambridge._settings import did_you_mean
from streambridge.deadletter import hand_back
from streambridge.deadletter_remote import is_remote_target, remote_target
from streambridge.errors import ConfigurationError, DeadLetterError, FatalSinkError
from streambridge.importer.conversion import RecordConverter
from streambridge.importer.events import PostHogEvent
from streambridge.importer.keys import parse_property_mappings
from streambridge.importer.results import (
    SkippedRecord,
    refusals_in,
    skip_fields,
    skip_summary,
)
from streambridge.importer.settings import ImporterSettings
from streambridge.importer.sinks import Sink

__all__ = ["ENVIRONMENT", "LambdaHandler", "handler", "handler_from_environment", "make_handler"]

logger = logging.getLogger("streambridge.lambda")

#: The environment variables :data:`handler` reads, and what each is for.
ENVIRONMENT = {
    "STREAMBRIDGE_EVENT_KEY": "dotted path to the event name (the app's eventKey); required",
    "STREAMBRIDGE_PROPERTY_MAPPINGS": "additionalPropertyMappings: 'a.b:c,d:e'",
    "STREAMBRIDGE_DEFAULT_DISTINCT_ID": "distinct_id when no mapping gives one",
    "STREAMBRIDGE_PERSONLESS": "'true': events without person processing",
    "STREAMBRIDGE_HISTORICAL": "'true': mark the events as a historical migration",
    "STREAMBRIDGE_LOG_LEVEL": "DEBUG, INFO (default), WARNING or ERROR",
    "STREAMBRIDGE_DEAD_LETTER": "where skipped and refused records go, with their data: "
    "s3://bucket/prefix or an SQS queue URL (when it cannot be written, they are retried)",
    "POSTHOG_API_KEY": "the PostHog project API key; required",
    "POSTHOG_HOST": "PostHog's ingestion host (default https://us.i.posthog.com)",
}

_STREAM_ARN_MARK = ":stream/"

#: Skipped records logged one line each per invocation; the rest in one summary line.
LOGGED_SKIPS = 100


def _stream_of(arn: object) -> str | None:
    """``lambda-stream`` of ``arn:aws:kinesis:us-east-2:123456789012:stream/lambda-stream``."""
    if isinstance(arn, str) and _STREAM_ARN_MARK in arn:
        name = arn.rsplit(_STREAM_ARN_MARK, 1)[1].split("/", 1)[0]
        return name or None
    return None


@attrs.frozen
class _Record:
    """One usable record of the event: where it is from and what the converter reads."""

    stream: str
    shard: str
    sequence: str
    kinesis: dict[str, Any]  # Data, SequenceNumber, ApproximateArrivalTimestamp


def _as_bytes(raw: object) -> bytes:
    """A record that cannot be read, as it came (for the log and dead letters)."""
    return json.dumps(raw, default=str, ensure_ascii=False).encode()


def _read(raw: object, fallback_stream: str) -> _Record | SkippedRecord:
    """One record of a Kinesis event, or why it cannot be read."""
    shard, sequence = "unknown", "unknown"
    if not isinstance(raw, Mapping) or not isinstance(raw.get("kinesis"), Mapping):
        reason = "not a Kinesis record (no 'kinesis' object)"
        return SkippedRecord(shard, sequence, 0, reason, _as_bytes(raw))
    body = raw["kinesis"]
    stream = _stream_of(raw.get("eventSourceARN")) or fallback_stream
    event_id = raw.get("eventID")
    if isinstance(event_id, str) and ":" in event_id:
        shard = event_id.split(":", 1)[0]
    sequence = body.get("sequenceNumber")
    if not isinstance(sequence, str) or not sequence:
        why = "it has no sequenceNumber"
        return SkippedRecord(shard, "unknown", 0, why, _as_bytes(raw), stream=stream)
    try:
        data = base64.b64decode(body.get("data") or "", validate=True)
    except (binascii.Error, TypeError, ValueError):
        why = "its data is not valid base64"
        return SkippedRecord(shard, sequence, 0, why, _as_bytes(raw), stream=stream)
    arrival = body.get("approximateArrivalTimestamp")
    record: dict[str, Any] = {"Data": data, "SequenceNumber": sequence}
    if isinstance(arrival, int | float) and not isinstance(arrival, bool):
        record["ApproximateArrivalTimestamp"] = datetime.fromtimestamp(arrival, timezone.utc)
    return _Record(stream, shard, sequence, record)


class LambdaHandler:
    """A Lambda handler for a Kinesis event source mapping (``handler(event, context)``).

    Build it with :func:`make_handler`. The mapping needs
    ``FunctionResponseTypes: [ReportBatchItemFailures]`` for the failures it returns to be
    retried one by one (without it, any failure retries the whole batch; nothing is lost
    either way).
    """

    def __init__(
        self,
        settings: ImporterSettings,
        sink: Sink,
        *,
        on_skip: Callable[[SkippedRecord], object] | None = None,
        records_per_sink_call: int = 100,
        time_margin: float = 5.0,
    ) -> None:
        """See :func:`make_handler`."""
        if records_per_sink_call < 1:
            msg = f"records_per_sink_call must be at least 1, got {records_per_sink_call}"
            raise ConfigurationError(msg)
        self.settings = settings
        self.sink = sink
        self.on_skip = on_skip
        self.records_per_sink_call = records_per_sink_call
        self.time_margin = time_margin
        self._converters: dict[str, RecordConverter] = {}

    def __call__(self, event: Any, context: Any = None) -> dict[str, Any]:
        """Import one invocation's records; the ones to retry, as ReportBatchItemFailures wants.

        Raises:
            ConfigurationError: ``event`` is not a Kinesis event (no ``Records`` list).
        """
        raws = event.get("Records") if isinstance(event, Mapping) else None
        if not isinstance(raws, list):
            msg = "not a Kinesis event: it has no 'Records' list (is the trigger a Kinesis stream?)"
            raise ConfigurationError(msg)
        records: list[_Record] = []
        skipped: list[SkippedRecord] = []
        for raw in raws:
            read = _read(raw, self.settings.stream_name)
            if isinstance(read, SkippedRecord):
                skipped.append(read)
            else:
                records.append(read)
        delivered, failed = 0, 0
        for start in range(0, len(records), self.records_per_sink_call):
            chunk = records[start : start + self.records_per_sink_call]
            if self._out_of_time(context):
                logger.warning(
                    "less than %.0f s left: %d record(s) left for a retry",
                    self.time_margin,
                    len(records) - start,
                )
                failed = len(records) - start
                break
            accepted = self._hand_over(chunk, skipped)
            if accepted is None:
                failed = len(records) - start
                break
            delivered += accepted
        unwritten = self._hand_back(skipped)
        logger.info(
            "%d record(s): %d event(s) delivered, %d skipped, %d to retry",
            len(raws),
            delivered,
            len(skipped),
            failed + len(unwritten),
        )
        retry = [r.sequence for r in records[len(records) - failed :]] if failed else []
        retry += [sequence for sequence in unwritten if sequence not in retry]
        return {"batchItemFailures": [{"itemIdentifier": sequence} for sequence in retry]}

    def _hand_back(self, skipped: list[SkippedRecord]) -> list[str]:
        """Log each skipped record, give them to ``on_skip``; those whose dead letter failed.

        One structured (JSON) log line per skipped record — stream, shard, sequence number,
        sub-sequence, position, reason — up to :data:`LOGGED_SKIPS`, then one line for the
        rest. When ``on_skip`` is a dead-letter target that cannot write them, their sequence
        numbers are returned: reported in ``batchItemFailures``, they are read again.
        """
        for skip in skipped[:LOGGED_SKIPS]:
            logger.warning("%s", json.dumps(skip_fields(skip), ensure_ascii=False))
        if len(skipped) > LOGGED_SKIPS:
            logger.warning(
                "%d more skipped record(s) not logged one by one",
                len(skipped) - LOGGED_SKIPS,
            )
        for line in skip_summary(skipped):
            logger.warning("%s", line)
        try:
            hand_back(self.on_skip, skipped, logger, "on_skip raised; going on")
        except DeadLetterError as exc:
            known = [s.sequence_number for s in skipped if s.sequence_number != "unknown"]
            logger.error(  # noqa: TRY400 - the message says it all
                "%s; %d record(s) reported for a retry instead", exc, len(set(known))
            )
            return list(dict.fromkeys(known))
        return []

    def _converter(self, stream: str) -> RecordConverter:
        converter = self._converters.get(stream)
        if converter is None:
            settings = attrs.evolve(self.settings, stream_name=stream)
            converter = self._converters[stream] = RecordConverter(settings)
        return converter

    def _hand_over(self, chunk: Sequence[_Record], skipped: list[SkippedRecord]) -> int | None:
        """Convert a few records and give their events to the sink: how many, or None (failed)."""
        events: list[PostHogEvent] = []
        for record in chunk:  # each record with its own stream and shard (one, in practice)
            got, bad = self._converter(record.stream).convert(record.shard, [record.kinesis])
            events.extend(got)
            skipped.extend(bad)
        if not events:
            return 0
        try:
            answer = self.sink(events)
        except FatalSinkError as exc:
            logger.error("the sink cannot take events (%s); left for a retry", exc)  # noqa: TRY400
            return None
        except Exception as exc:  # noqa: BLE001 - any sink failure: the mapping retries
            logger.warning(
                "the sink did not take %d event(s) (%r); left for a retry", len(events), exc
            )
            return None
        refusals = refusals_in(answer)
        for record in chunk if refusals else ():  # a refused event is skipped, not retried
            refused = self._converter(record.stream).refused
            skipped.extend(refused(record.shard, [record.kinesis], refusals))
        return len(events) - len(refusals)

    def _out_of_time(self, context: Any) -> bool:
        remaining = getattr(context, "get_remaining_time_in_millis", None)
        return callable(remaining) and remaining() < self.time_margin * 1000


def make_handler(
    settings: ImporterSettings,
    sink: Sink,
    *,
    on_skip: Callable[[SkippedRecord], object] | None = None,
    records_per_sink_call: int = 100,
    time_margin: float = 5.0,
) -> LambdaHandler:
    """A Lambda handler that imports Kinesis records into ``sink``.

    Example::

        from streambridge import ImporterSettings, PostHogSink, make_handler

        handler = make_handler(
            ImporterSettings(stream_name="clicks", event_key="properties.eventName"),
            PostHogSink(api_key=os.environ["POSTHOG_API_KEY"]),
        )

    Args:
        settings: Event key, mappings, default distinct id. The stream name in the uuids is
            each record's (from ``eventSourceARN``); ``settings.stream_name`` is used only for
            a record without one.
        sink: Receives the events, a few records' worth at a time; it must return only once
            the destination has them (:class:`~streambridge.PostHogSink` does).
        on_skip: Called with each record that cannot become an event (they are logged too);
            a :class:`~streambridge.DeadLetterTarget` gets an invocation's at once, and the
            records it cannot write are reported in ``batchItemFailures``.
        records_per_sink_call: Records whose events go to the sink in one call.
        time_margin: Seconds of the invocation kept in hand: with less left, no more sink
            calls are started and the rest is reported for a retry.
    """
    return LambdaHandler(
        settings,
        sink,
        on_skip=on_skip,
        records_per_sink_call=records_per_sink_call,
        time_margin=time_margin,
    )


def _flag(environ: Mapping[str, str], name: str) -> bool:
    value = environ.get(name, "false").strip().lower()
    if value not in ("true", "false", "1", "0", "yes", "no", ""):
        raise ConfigurationError(f"{name} must be 'true' or 'false', got {value!r}")
    return value in ("true", "1", "yes")


def handler_from_environment(environ: Mapping[str, str] | None = None) -> LambdaHandler:
    """The handler :data:`handler` uses, built from environment variables (:data:`ENVIRONMENT`).

    Raises:
        ConfigurationError: A required variable is missing, a value is bad, or a
            ``STREAMBRIDGE_`` variable is unknown (a misspelling would otherwise be ignored).
    """
    from streambridge.importer.sinks import PostHogSink  # noqa: PLC0415 - the posthog extra

    env = os.environ if environ is None else environ
    for name in env:
        if name.startswith("STREAMBRIDGE_") and name not in ENVIRONMENT:
            hint = did_you_mean(name, ENVIRONMENT)
            raise ConfigurationError(f"unknown environment variable {name}{hint}")
    for name in ("STREAMBRIDGE_EVENT_KEY", "POSTHOG_API_KEY"):
        if not env.get(name, "").strip():
            raise ConfigurationError(f"{name} is not set ({ENVIRONMENT[name]})")
    level = env.get("STREAMBRIDGE_LOG_LEVEL", "INFO").strip().upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        msg = f"STREAMBRIDGE_LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, got {level!r}"
        raise ConfigurationError(msg)
    logging.getLogger("streambridge").setLevel(level)
    options: dict[str, Any] = {}
    if env.get("STREAMBRIDGE_DEFAULT_DISTINCT_ID"):
        options["default_distinct_id"] = env["STREAMBRIDGE_DEFAULT_DISTINCT_ID"]
    try:
        options["additional_property_mappings"] = parse_property_mappings(
            env.get("STREAMBRIDGE_PROPERTY_MAPPINGS") or None
        )
    except ConfigurationError as exc:
        raise ConfigurationError(f"STREAMBRIDGE_PROPERTY_MAPPINGS: {exc}") from None
    settings = ImporterSettings(
        stream_name="unknown",  # each record's own stream is used (eventSourceARN)
        event_key=env["STREAMBRIDGE_EVENT_KEY"].strip(),
        personless=_flag(env, "STREAMBRIDGE_PERSONLESS"),
        **options,
    )
    sink = PostHogSink(
        api_key=env["POSTHOG_API_KEY"].strip(),
        host=env.get("POSTHOG_HOST", "").strip() or "https://us.i.posthog.com",
        historical_migration=_flag(env, "STREAMBRIDGE_HISTORICAL"),
    )
    letters = None
    spec = env.get("STREAMBRIDGE_DEAD_LETTER", "").strip()
    if spec:
        if not is_remote_target(spec):
            msg = (
                f"STREAMBRIDGE_DEAD_LETTER must be s3://bucket/prefix or an SQS queue URL, "
                f"got {spec!r} (a Lambda's files do not outlive it)"
            )
            raise ConfigurationError(msg)
        import boto3  # noqa: PLC0415 - in every Lambda runtime

        client: Any = boto3.client
        letters = remote_target(spec, client)
    return make_handler(settings, sink, on_skip=letters)


_configured: list[LambdaHandler] = []


def handler(event: Any, context: Any = None) -> dict[str, Any]:
    """The zero-code Lambda handler: ``streambridge.importer.aws_lambda.handler``.

    Configured from environment variables on its first invocation (:data:`ENVIRONMENT`); a
    bad configuration raises :class:`~streambridge.errors.ConfigurationError` on every
    invocation, so the batch is retried, not skipped, once the configuration is fixed.
    """
    if not _configured:
        _configured.append(handler_from_environment())
    return _configured[0](event, context)
