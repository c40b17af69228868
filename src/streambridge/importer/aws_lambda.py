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
* events go to the sink a share of the records at a time, several calls in flight (the sink's
  ``calls_in_flight``: 32 for :class:`~streambridge.PostHogSink`); when a call fails, the first
  record whose events it did not take and every record after it are reported, so the event
  source mapping retries from there (its checkpoint is the lowest failed sequence number);
* with less than ``time_margin`` seconds of the invocation left, nothing more is started and
  the rest is reported the same way.

Stream and shard come from each record's ``eventSourceARN`` and ``eventID``.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs

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
    LambdaRecord,
    UnreadableRecord,
    batch_item_failures,
    out_of_time,
    read_record,
)
from streambridge.deadletter import hand_back
from streambridge.errors import ConfigurationError, DeadLetterError
from streambridge.importer.conversion import RecordConverter
from streambridge.importer.keys import parse_property_mappings
from streambridge.importer.lambda_calls import SinkCall
from streambridge.importer.results import (
    SkippedRecord,
    refusals_in,
    skip_fields,
    skip_summary,
)
from streambridge.importer.settings import ImporterSettings
from streambridge.importer.sinks import Sink, calls_in_flight
from streambridge.metrics import Metrics

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

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
    **EMF_VARIABLES,
}

#: Skipped records logged one line each per invocation; the rest in one summary line.
LOGGED_SKIPS = 100
#: The fewest records of one sink call when the handler shares an invocation's records out.
MIN_RECORDS_PER_CALL = 100


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
        records_per_sink_call: int | None = None,
        sink_calls_in_flight: int | None = None,
        time_margin: float = 5.0,
        metrics: Metrics | None = None,
        emf: bool = True,
    ) -> None:
        """See :func:`make_handler`."""
        if records_per_sink_call is not None and records_per_sink_call < 1:
            msg = f"records_per_sink_call must be at least 1, got {records_per_sink_call}"
            raise ConfigurationError(msg)
        calls = calls_in_flight(sink) if sink_calls_in_flight is None else sink_calls_in_flight
        if calls < 1:
            raise ConfigurationError(f"sink_calls_in_flight must be at least 1, got {calls}")
        self.settings = settings
        self.sink = sink
        self.on_skip = on_skip
        self.records_per_sink_call = records_per_sink_call
        self.sink_calls_in_flight = calls
        self.time_margin = time_margin
        self._converters: dict[str, RecordConverter] = {}
        self._pool: ThreadPoolExecutor | None = None  # kept warm across invocations
        #: What the invocations did (docs/operations.md), kept across them.
        self.metrics = Metrics() if metrics is None else metrics
        #: Prints each invocation's metrics (CloudWatch EMF), or None.
        self.emf = EmfWriter.from_environment("importer") if emf else None

    def __call__(self, event: Any, context: Any = None) -> dict[str, Any]:
        """Import one invocation's records; the ones to retry, as ReportBatchItemFailures wants.

        Raises:
            ConfigurationError: ``event`` is not a Kinesis event (no ``Records`` list).
        """
        raws = event.get("Records") if isinstance(event, Mapping) else None
        if not isinstance(raws, list):
            msg = "not a Kinesis event: it has no 'Records' list (is the trigger a Kinesis stream?)"
            raise ConfigurationError(msg)
        records: list[LambdaRecord] = []
        skipped: list[SkippedRecord] = []
        for raw in raws:
            read = read_record(raw, self.settings.stream_name)
            if isinstance(read, UnreadableRecord):
                skipped.append(
                    SkippedRecord(
                        read.shard, read.sequence, 0, read.reason, read.raw, stream=read.stream
                    )
                )
            else:
                records.append(read)
        before = self.metrics.snapshot() if self.emf is not None else None
        delivered, failed = self._send(records, skipped, context)
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
        stream = records[0].stream if records else self.settings.stream_name
        metrics = self.metrics
        metrics.add("records_read", stream, len(raws))
        metrics.add("events_delivered", stream, delivered)
        metrics.add("records_skipped", stream, len(skipped))
        if self.emf is not None and before is not None:
            self.emf.write(metrics.snapshot().since(before), stream)
        return batch_item_failures(retry)

    def _hand_back(self, skipped: list[SkippedRecord]) -> list[str]:
        """Log each skipped record, give them to ``on_skip``; those whose dead letter failed.

        One structured (JSON) log line per skipped record — stream, shard, sequence number,
        sub-sequence, position, reason — up to :data:`LOGGED_SKIPS`, then one line for the
        rest. When ``on_skip`` is a dead-letter target that cannot write them, their sequence
        numbers are returned: reported in ``batchItemFailures``, they are read again.
        """
        for skip in skipped[:LOGGED_SKIPS]:
            fields = skip_fields(skip)
            extra = {k: v for k, v in fields.items() if k not in ("message", "shard_id")}
            extra["shard"] = skip.shard_id
            logger.warning("%s", json.dumps(fields, ensure_ascii=False), extra=extra)
        if len(skipped) > LOGGED_SKIPS:
            logger.warning(
                "%d more skipped record(s) not logged one by one",
                len(skipped) - LOGGED_SKIPS,
                extra={"records": len(skipped) - LOGGED_SKIPS},
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

    def _send(
        self, records: Sequence[LambdaRecord], skipped: list[SkippedRecord], context: Any
    ) -> tuple[int, int]:
        """Hand the records' events to the sink, calls in flight; (events taken, records failed).

        Calls are started in order while time allows, at most ``sink_calls_in_flight`` at once;
        their outcomes are taken in order. From the first call that failed (or was never
        started), every record is failed — its skips too: they come back with the retry.
        """
        size = self.records_per_sink_call or max(
            MIN_RECORDS_PER_CALL, math.ceil(len(records) / self.sink_calls_in_flight)
        )
        calls: list[SinkCall] = []
        for start in range(0, len(records), size):
            if self._out_of_time(context):
                logger.warning(
                    "less than %.0f s left: %d record(s) left for a retry",
                    self.time_margin,
                    len(records) - start,
                    extra={**records[start].identity(), "records": len(records) - start},
                )
                break
            call = self._call(records[start : start + size])
            calls.append(call)
            if len(calls) >= self.sink_calls_in_flight:  # room for the next: the oldest ends
                oldest = calls[-self.sink_calls_in_flight]
                oldest.end()
                if oldest.error is not None:
                    break  # nothing after a failure is started
        delivered, done = 0, 0
        for call in calls:
            call.end()
            if call.seconds is not None:
                self.metrics.observe("sink_latency", call.stream, call.seconds)
            if call.error is not None:
                self.metrics.add("sink_failures", call.stream)
                call.log_failure(logger)
                break
            refusals = refusals_in(call.answer)
            skipped.extend(call.skipped)
            for record in call.records if refusals else ():  # refused: skipped, not retried
                refused = self._converter(record.stream).refused
                skipped.extend(refused(record.shard, [record.kinesis], refusals))
            delivered += len(call.events) - len(refusals)
            done += len(call.records)
        return delivered, len(records) - done

    def _call(self, records: Sequence[LambdaRecord]) -> SinkCall:
        """Convert the records and start their sink call (in this thread when one at a time)."""
        call = SinkCall(records, [], [], records[0].stream if records else "")
        for record in records:  # each record with its own stream and shard (one, in practice)
            got, bad = self._converter(record.stream).convert(record.shard, [record.kinesis])
            call.events.extend(got)
            call.skipped.extend(bad)
        if not call.events:
            return call
        if self.sink_calls_in_flight == 1:
            try:
                call.answer = call.send(self.sink)
            except Exception as exc:  # noqa: BLE001 - any sink failure: the mapping retries
                call.error = exc
            return call
        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415 - cold start

            self._pool = ThreadPoolExecutor(self.sink_calls_in_flight, "streambridge-sink")
        call.future = self._pool.submit(call.send, self.sink)
        return call

    def _out_of_time(self, context: Any) -> bool:
        return out_of_time(context, self.time_margin)


def make_handler(
    settings: ImporterSettings,
    sink: Sink,
    *,
    on_skip: Callable[[SkippedRecord], object] | None = None,
    records_per_sink_call: int | None = None,
    sink_calls_in_flight: int | None = None,
    time_margin: float = 5.0,
    metrics: Metrics | None = None,
    emf: bool = True,
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
        sink: Receives the events, a share of the records at a time; it must return only
            once the destination has them (:class:`~streambridge.PostHogSink` does).
        on_skip: Called with each record that cannot become an event (they are logged too);
            a :class:`~streambridge.DeadLetterTarget` gets an invocation's at once, and the
            records it cannot write are reported in ``batchItemFailures``.
        records_per_sink_call: Records whose events go to the sink in one call (default:
            the invocation's records shared out over the calls in flight, at least
            :data:`MIN_RECORDS_PER_CALL` a call).
        sink_calls_in_flight: Sink calls at once, from a pool of threads (default: the
            sink's ``calls_in_flight``; 1 — in the handler's thread — for a sink without it).
        time_margin: Seconds of the invocation kept in hand: with less left, no more sink
            calls are started and the rest is reported for a retry.
        metrics: Where the handler's measurements go (default: its own,
            ``handler.metrics``).
        emf: Print what each invocation did as one CloudWatch Embedded Metric Format line
            (docs/operations.md), unless ``STREAMBRIDGE_METRICS=off``; False: never.
    """
    return LambdaHandler(
        settings,
        sink,
        on_skip=on_skip,
        records_per_sink_call=records_per_sink_call,
        sink_calls_in_flight=sink_calls_in_flight,
        time_margin=time_margin,
        metrics=metrics,
        emf=emf,
    )


def handler_from_environment(environ: Mapping[str, str] | None = None) -> LambdaHandler:
    """The handler :data:`handler` uses, built from environment variables (:data:`ENVIRONMENT`).

    Raises:
        ConfigurationError: A required variable is missing, a value is bad, or a
            ``STREAMBRIDGE_`` variable is unknown (a misspelling would otherwise be ignored).
    """
    from streambridge.importer.sinks import PostHogSink  # noqa: PLC0415 - imported when used

    env = os.environ if environ is None else environ
    check_variables(env, ENVIRONMENT, ("STREAMBRIDGE_EVENT_KEY", "POSTHOG_API_KEY"))
    set_log_level(env)
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
        personless=flag(env, "STREAMBRIDGE_PERSONLESS"),
        **options,
    )
    sink = PostHogSink(
        api_key=env["POSTHOG_API_KEY"].strip(),
        host=env.get("POSTHOG_HOST", "").strip() or "https://us.i.posthog.com",
        historical_migration=flag(env, "STREAMBRIDGE_HISTORICAL"),
    )
    letters = dead_letter_from(env)
    built = make_handler(settings, sink, on_skip=letters, emf=False)
    built.emf = EmfWriter.from_environment("importer", env)
    return built


_configured = Configured(handler_from_environment)


def handler(event: Any, context: Any = None) -> dict[str, Any]:
    """The zero-code Lambda handler: ``streambridge.importer.aws_lambda.handler``.

    Configured from environment variables on its first invocation (:data:`ENVIRONMENT`); a
    bad configuration raises :class:`~streambridge.errors.ConfigurationError` on every
    invocation, so the batch is retried, not skipped, once the configuration is fixed.
    """
    return _configured.get()(event, context)
