"""The Lambda handler: Kinesis event source mapping events in, ReportBatchItemFailures out."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from aws_kinesis_agg.aggregator import RecordAggregator

from streambridge import (
    ConfigurationError,
    ImporterSettings,
    PostHogAuthError,
    PostHogEvent,
    SinkRefusal,
    SkippedRecord,
    make_handler,
)
from streambridge._environment import Configured
from streambridge.importer import aws_lambda
from streambridge.importer.aws_lambda import handler_from_environment
from streambridge.importer.events import event_uuid
from streambridge.testing import local_posthog

ARN = "arn:aws:kinesis:us-east-2:123456789012:stream/clicks"
SHARD = "shardId-000000000006"
SETTINGS = ImporterSettings(
    stream_name="fallback", event_key="name", additional_property_mappings="user:distinct_id,n:n"
)
GUIDE_EVENT = Path(__file__).parent / "data" / "lambda-developer-guide-event.json"


def doc(n: int) -> bytes:
    """One record's data: a JSON document with an event name."""
    return json.dumps({"name": "click", "user": f"u{n}", "n": n}).encode()


def record(sequence: str, data: bytes, *, arn: str = ARN, shard: str = SHARD) -> dict[str, Any]:
    """A record as the event source mapping delivers it."""
    return {
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": "k",
            "sequenceNumber": sequence,
            "data": base64.b64encode(data).decode(),
            "approximateArrivalTimestamp": 1545084650.987,
        },
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": f"{shard}:{sequence}",
        "eventName": "aws:kinesis:record",
        "invokeIdentityArn": "arn:aws:iam::123456789012:role/lambda-role",
        "awsRegion": "us-east-2",
        "eventSourceARN": arn,
    }


def kinesis_event(count: int) -> dict[str, Any]:
    """``count`` good records, with sequence numbers from 100."""
    return {"Records": [record(str(100 + n), doc(n)) for n in range(count)]}


class Sink:
    """Takes events; fails from its ``fail_from``-th call on (1-based), or refuses some."""

    def __init__(self, fail_from: int | None = None, error: Exception | None = None) -> None:
        """A sink that fails from call ``fail_from`` on, raising ``error``."""
        self.calls: list[list[PostHogEvent]] = []
        self.fail_from = fail_from
        self.error = error or RuntimeError("PostHog is down")
        self.refuse: set[int] = set()

    def __call__(self, events: Sequence[PostHogEvent]) -> list[SinkRefusal]:
        """Take the events (or fail); refuse those whose ``n`` is in :attr:`refuse`."""
        if self.fail_from is not None and len(self.calls) + 1 >= self.fail_from:
            self.calls.append([])
            raise self.error
        self.calls.append(list(events))
        return [SinkRefusal(e, "too big") for e in events if e.properties["n"] in self.refuse]

    @property
    def events(self) -> list[PostHogEvent]:
        """Every event taken, in order."""
        return [e for call in self.calls for e in call]


def failures(answer: dict[str, Any]) -> list[str]:
    """The sequence numbers reported for a retry."""
    assert set(answer) == {"batchItemFailures"}
    return [item["itemIdentifier"] for item in answer["batchItemFailures"]]


def test_all_delivered_reports_no_failure_and_events_carry_stream_and_shard() -> None:
    """Stream and shard of the uuids come from eventSourceARN and eventID, not the settings."""
    sink = Sink()
    answer = make_handler(SETTINGS, sink)(kinesis_event(3), None)
    assert failures(answer) == []
    assert [e.properties["n"] for e in sink.events] == [0, 1, 2]
    assert [e.uuid for e in sink.events] == [
        event_uuid("clicks", SHARD, str(100 + n), 0) for n in range(3)
    ]
    assert sink.events[0].distinct_id == "u0"
    assert sink.events[0].timestamp.isoformat() == "2018-12-17T22:10:50.987000+00:00"


def test_the_developer_guide_event_is_skipped_with_reasons_not_failed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """AWS's own example (plain text, not JSON): two skips with reasons, no failure, no crash."""
    skipped: list[SkippedRecord] = []
    sink = Sink()
    event = json.loads(GUIDE_EVENT.read_text())
    answer = make_handler(SETTINGS, sink, on_skip=skipped.append)(event, None)
    assert failures(answer) == []
    assert sink.calls == []
    assert [(s.shard_id, s.sequence_number) for s in skipped] == [
        (SHARD, r["kinesis"]["sequenceNumber"]) for r in event["Records"]
    ]
    assert all("JSON" in s.reason for s in skipped)
    assert skipped[0].data == b"Hello, this is a test."
    assert "skipped 2 record" in caplog.text


def test_kpl_aggregated_records_inside_the_event_become_each_user_records_events() -> None:
    """Lambda hands over the aggregate whole; its user records get their own uuids."""
    aggregator = RecordAggregator()
    for n in range(3):
        aggregator.add_user_record("k", doc(n))
    _, _, packed = aggregator.clear_and_get().get_contents()
    sink = Sink()
    event = {"Records": [record("500", bytes(packed)), record("501", doc(9))]}
    answer = make_handler(SETTINGS, sink)(event, None)
    assert failures(answer) == []
    assert [e.properties["n"] for e in sink.events] == [0, 1, 2, 9]
    assert [e.uuid for e in sink.events] == [
        event_uuid("clicks", SHARD, "500", 0, 0),
        event_uuid("clicks", SHARD, "500", 0, 1),
        event_uuid("clicks", SHARD, "500", 0, 2),
        event_uuid("clicks", SHARD, "501", 0),
    ]


def test_poison_records_are_skipped_and_the_rest_delivered() -> None:
    """Bad base64, no kinesis object, no sequence number, not JSON: skipped; others go on."""
    good = kinesis_event(2)["Records"]
    bad_base64 = record("200", b"")
    bad_base64["kinesis"]["data"] = "%%% not base64 %%%"
    no_sequence = record("201", doc(5))
    del no_sequence["kinesis"]["sequenceNumber"]
    event = {
        "Records": [
            good[0],
            bad_base64,
            {"eventSource": "aws:sqs"},
            no_sequence,
            record("202", b"\x00\xff garbage"),
            good[1],
        ]
    }
    skipped: list[SkippedRecord] = []
    sink = Sink()
    answer = make_handler(SETTINGS, sink, on_skip=skipped.append)(event, None)
    assert failures(answer) == []
    assert [e.properties["n"] for e in sink.events] == [0, 1]
    reasons = [s.reason for s in skipped]
    assert len(reasons) == 4
    assert "its data is not valid base64" in reasons
    assert "not a Kinesis record (no 'kinesis' object)" in reasons
    assert "it has no sequenceNumber" in reasons


def test_a_sink_failing_half_way_reports_the_first_undelivered_record_and_all_after() -> None:
    """Records go to the sink a few at a time; from the failed call on, all are retried."""
    sink = Sink(fail_from=2)
    answer = make_handler(SETTINGS, sink, records_per_sink_call=2)(kinesis_event(5), None)
    assert [e.properties["n"] for e in sink.events] == [0, 1]
    assert failures(answer) == ["102", "103", "104"]


def test_a_sink_that_can_never_take_events_reports_everything_left() -> None:
    """A FatalSinkError (PostHog refusing the key) fails what is left, for a later retry."""
    sink = Sink(fail_from=1, error=PostHogAuthError("PostHog answered 401"))
    answer = make_handler(SETTINGS, sink)(kinesis_event(3), None)
    assert failures(answer) == ["100", "101", "102"]


def test_records_after_a_failure_are_reported_even_when_they_had_no_events() -> None:
    """The mapping retries from the lowest failed sequence number: all after it go with it."""
    sink = Sink(fail_from=1)
    event = {"Records": [record("300", doc(0)), record("301", b"not json")]}
    answer = make_handler(SETTINGS, sink, records_per_sink_call=1)(event, None)
    assert failures(answer) == ["300", "301"]


def test_refused_events_are_skipped_not_retried() -> None:
    """A SinkRefusal (an event PostHog will never take) is a skip with the sink's reason."""
    sink = Sink()
    sink.refuse = {1}
    skipped: list[SkippedRecord] = []
    answer = make_handler(SETTINGS, sink, on_skip=skipped.append)(kinesis_event(3), None)
    assert failures(answer) == []
    assert [(s.sequence_number, s.reason) for s in skipped] == [
        ("101", "refused by the sink: too big")
    ]


class Context:
    """A Lambda context whose remaining time runs down by one second per look."""

    def __init__(self, millis: int) -> None:
        """A context with ``millis`` left."""
        self.millis = millis

    def get_remaining_time_in_millis(self) -> int:
        """What Lambda's context says; a second less each time."""
        self.millis -= 1000
        return self.millis


def test_nothing_more_is_started_when_the_invocation_is_almost_out_of_time() -> None:
    """With less than time_margin left, the rest is reported instead of timing out mid-call."""
    sink = Sink()
    handler = make_handler(SETTINGS, sink, records_per_sink_call=1, time_margin=5.0)
    answer = handler(kinesis_event(5), Context(8000))  # 7, 6, 5 s left: go; then 4 s: stop
    assert [e.properties["n"] for e in sink.events] == [0, 1, 2]
    assert failures(answer) == ["103", "104"]


def test_records_from_two_streams_keep_their_own_stream_in_the_uuid() -> None:
    """One function on two streams: each record's own eventSourceARN names its stream."""
    other = "arn:aws:kinesis:us-east-2:123456789012:stream/views"
    event = {"Records": [record("1", doc(0)), record("2", doc(1), arn=other, shard="s-1")]}
    sink = Sink()
    make_handler(SETTINGS, sink)(event, None)
    assert [e.uuid for e in sink.events] == [
        event_uuid("clicks", SHARD, "1", 0),
        event_uuid("views", "s-1", "2", 0),
    ]


def test_an_event_that_is_not_from_kinesis_is_a_configuration_error() -> None:
    """A wrong trigger is not silently "all delivered"."""
    with pytest.raises(ConfigurationError, match="not a Kinesis event"):
        make_handler(SETTINGS, Sink())({"detail-type": "Scheduled Event"}, None)
    with pytest.raises(ConfigurationError, match="records_per_sink_call"):
        make_handler(SETTINGS, Sink(), records_per_sink_call=0)


def test_on_skip_raising_does_not_stop_the_batch(caplog: pytest.LogCaptureFixture) -> None:
    """A broken on_skip is logged; the batch still goes through."""

    def broken(_skip: SkippedRecord) -> None:
        raise OSError("disk full")

    sink = Sink()
    event = {"Records": [record("1", b"nope"), record("2", doc(2))]}
    assert failures(make_handler(SETTINGS, sink, on_skip=broken)(event, None)) == []
    assert [e.properties["n"] for e in sink.events] == [2]
    assert "on_skip raised" in caplog.text


# --------------------------------------------------------------------------- from the environment

ENV = {
    "STREAMBRIDGE_EVENT_KEY": "name",
    "STREAMBRIDGE_PROPERTY_MAPPINGS": "user:distinct_id,n:n",
    "POSTHOG_API_KEY": "phc_test",
}


def test_the_zero_code_handler_sends_to_posthog(monkeypatch: pytest.MonkeyPatch) -> None:
    """``streambridge.importer.aws_lambda.handler``, configured only by the environment."""
    with local_posthog() as posthog:
        for name, value in {**ENV, "POSTHOG_HOST": posthog.url}.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setattr(
            aws_lambda, "_configured", Configured(aws_lambda.handler_from_environment)
        )
        answer = aws_lambda.handler(kinesis_event(3), None)
        assert failures(answer) == []
        assert [e["properties"]["n"] for e in posthog.events] == [0, 1, 2]
        assert posthog.api_keys == ["phc_test"]
        assert logging.getLogger("streambridge").level == logging.INFO
        posthog.status = 503  # PostHog down past the sink's budget: every record retried
        handler: Any = aws_lambda._configured.get()
        handler.sink.retry = attrs_evolve_retry(handler.sink.retry)
        assert failures(aws_lambda.handler(kinesis_event(2), None)) == ["100", "101"]


def attrs_evolve_retry(retry: Any) -> Any:
    """The sink's retry policy with a budget short enough for a test."""
    import attrs  # noqa: PLC0415

    return attrs.evolve(retry, max_elapsed=0.2, base_delay=0.01, max_delay=0.02)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"STREAMBRIDGE_EVENT_KEY": ""}, "STREAMBRIDGE_EVENT_KEY is not set"),
        ({"POSTHOG_API_KEY": " "}, "POSTHOG_API_KEY is not set"),
        ({"STREAMBRIDGE_MAPPING": "a:b"}, "did you mean 'STREAMBRIDGE_PROPERTY_MAPPINGS'"),
        ({"STREAMBRIDGE_PERSONLESS": "maybe"}, "STREAMBRIDGE_PERSONLESS must be 'true'"),
        ({"STREAMBRIDGE_LOG_LEVEL": "LOUD"}, "STREAMBRIDGE_LOG_LEVEL must be"),
        ({"STREAMBRIDGE_PROPERTY_MAPPINGS": "nocolon"}, "STREAMBRIDGE_PROPERTY_MAPPINGS: .*no ':'"),
    ],
)
def test_a_bad_environment_is_a_clear_error(change: dict[str, str], message: str) -> None:
    """Misconfiguration raises (the batch is retried once fixed), naming the variable."""
    with pytest.raises(ConfigurationError, match=message):
        handler_from_environment({**ENV, **change})


def test_environment_options_reach_the_settings_and_the_sink() -> None:
    """Personless, historical, default distinct id and host are read."""
    handler = handler_from_environment(
        {
            **ENV,
            "STREAMBRIDGE_PERSONLESS": "true",
            "STREAMBRIDGE_HISTORICAL": "yes",
            "STREAMBRIDGE_DEFAULT_DISTINCT_ID": "someone",
            "POSTHOG_HOST": "https://eu.i.posthog.com",
        }
    )
    assert handler.settings.personless is True
    assert handler.settings.default_distinct_id == "someone"
    assert handler.sink.historical_migration is True  # type: ignore[attr-defined]
    assert handler.sink.host == "https://eu.i.posthog.com"  # type: ignore[attr-defined]
