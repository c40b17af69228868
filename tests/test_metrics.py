"""Issue 22, part 1: the measurements, fed by both halves and every engine, and their EMF lines.

The counters must equal what the results say (a run's totals, a forward's result, an
invocation's records), rise while a run works (not only when it returns), and the Lambda
handlers' lines must be CloudWatch Embedded Metric Format documents as the specification
defines them (checked below, rule by rule), one per invocation, holding that invocation's
values only.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Sequence
from typing import Any

import pytest

from streambridge import (
    ConfigurationError,
    FirehoseForwarder,
    ForwarderSettings,
    ImporterSettings,
    KinesisImporter,
    PostHogEvent,
    make_handler,
)
from streambridge.forwarder import aws_lambda as forwarder_lambda
from streambridge.forwarder.webhook import WebhookReceiver
from streambridge.importer.aws_lambda import handler_from_environment
from streambridge.metrics import MEASURES, Metrics, MetricsSnapshot, emf_document
from streambridge.testing import FaultInjector, LocalAWS, PartialFailure, throttling

#: The units a MetricDefinition may name (the EMF specification, CloudWatch's StandardUnit).
UNITS = {
    *("Seconds", "Microseconds", "Milliseconds", "Bytes", "Kilobytes", "Megabytes"),
    *("Gigabytes", "Terabytes", "Bits", "Kilobits", "Megabits", "Gigabits", "Terabits"),
    *("Percent", "Count", "Bytes/Second", "Kilobytes/Second", "Megabytes/Second"),
    *("Gigabytes/Second", "Terabytes/Second", "Bits/Second", "Kilobits/Second"),
    *("Megabits/Second", "Gigabits/Second", "Terabits/Second", "Count/Second", "None"),
}


def check_emf(line: str) -> dict[str, Any]:
    """The document of ``line``, checked against the Embedded Metric Format specification.

    https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html
    """
    document = json.loads(line)  # one JSON object, nothing before or after it
    assert isinstance(document, dict)
    metadata = document["_aws"]
    assert isinstance(metadata["Timestamp"], int)  # milliseconds since the epoch
    assert metadata["Timestamp"] > 1_600_000_000_000
    directives = metadata["CloudWatchMetrics"]
    assert isinstance(directives, list)
    assert directives
    for directive in directives:
        assert set(directive) <= {"Namespace", "Dimensions", "Metrics"}
        namespace = directive["Namespace"]
        assert isinstance(namespace, str)
        assert 1 <= len(namespace) <= 255
        assert namespace.strip() == namespace
        for dimension_set in directive["Dimensions"]:
            assert isinstance(dimension_set, list)
            assert 1 <= len(dimension_set) <= 30
            for key in dimension_set:  # each names a member of the root holding a string
                assert isinstance(document[key], str)
                assert 1 <= len(document[key]) <= 1024
        metrics = directive["Metrics"]
        assert len(metrics) <= 100
        for definition in metrics:
            assert set(definition) <= {"Name", "Unit", "StorageResolution"}
            assert isinstance(definition["Name"], str)
            assert 1 <= len(definition["Name"]) <= 1024
            assert definition.get("Unit", "None") in UNITS
            value = document[definition["Name"]]  # a number, or an array of at most 100
            values = value if isinstance(value, list) else [value]
            assert len(values) <= 100
            for number in values:
                assert isinstance(number, int | float)
                assert not isinstance(number, bool)
                assert math.isfinite(number)
    return document


def test_counters_latencies_and_what_was_added_since() -> None:
    """Counters add up per stream; since() gives the difference; disabled keeps nothing."""
    metrics = Metrics()
    metrics.add("records_read", "a", 3)
    metrics.add("records_read", "b")
    before = metrics.snapshot()
    metrics.add("records_read", "a", 2)
    metrics.observe("sink_latency", "a", 0.25)
    metrics.observe("sink_latency", "a", 0.75)
    metrics.set_lag("a", "shardId-0", 1200)
    now = metrics.snapshot()
    assert 5 == now.counter("records_read", "a")
    assert (2, 1.0) == now.latencies[("sink_latency", "a")]
    added = now.since(before)
    assert (2, 0) == (added.counter("records_read", "a"), added.counter("records_read", "b"))
    assert {("a", "shardId-0"): 1200} == dict(added.lag)
    assert ["a", "b"] == now.streams()
    metrics.forget_shard("a", "shardId-0")
    assert not metrics.snapshot().lag
    off = Metrics(enabled=False)
    off.add("records_read", "a")
    off.observe("sink_latency", "a", 1.0)
    off.set_lag("a", "s", 1)
    assert off.tap({"records": "records_read"}, "a") is None
    assert MetricsSnapshot() == off.snapshot()


def test_the_emf_document_follows_the_specification_and_powertools_shape() -> None:
    """Every counter of the half (zeros too), a latency as its mean in ms, two dimensions."""
    metrics = Metrics()
    metrics.add("records_read", "clicks", 7)
    metrics.observe("sink_latency", "clicks", 0.1)
    metrics.observe("sink_latency", "clicks", 0.3)
    metrics.add("records_sent", "clicks", 99)  # the forwarder's: not in an importer line
    document = emf_document(
        metrics.snapshot(), half="importer", stream="clicks", namespace="ns", service="svc"
    )
    checked = check_emf(json.dumps(document))
    assert ("svc", "clicks") == (checked["service"], checked["stream"])
    assert [["service", "stream"]] == checked["_aws"]["CloudWatchMetrics"][0]["Dimensions"]
    assert 7 == checked["RecordsRead"]
    assert 0 == checked["EventsDelivered"]
    assert 200.0 == checked["SinkLatency"]
    assert "RecordsSent" not in checked
    names = {m["Name"] for m in checked["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    importer_counters = {
        m.emf_name for m in MEASURES if m.kind == "counter" and "importer" in m.halves
    }
    assert importer_counters | {"SinkLatency"} == names
    assert "AwsCallLatency" not in checked  # no call timed: no value to give


# ---------------------------------------------------------------- the engines feed them


def numbered(count: int) -> list[dict[str, Any]]:
    """Batches of one custom event each, numbered."""
    return [
        {"message_id": f"m{n}", "events": [{"event_type": "custom_event", "data": {"n": n}}]}
        for n in range(count)
    ]


@pytest.mark.integration
def test_the_forwarders_counters_are_its_results(aws: LocalAWS) -> None:
    """Through moto with throttled entries and a throttled call: the counters equal the result."""
    aws.create_delivery_stream("events")
    client = aws.client("firehose")
    settings = ForwarderSettings(delivery_stream_name="events", send_as_batch=False)
    forwarder = FirehoseForwarder(client, settings, max_batch_records=20, sleep=lambda _: None)
    batches: list[Any] = [*numbered(150), "not a batch", {"events": []}]
    with FaultInjector(client) as faults:
        faults.add("PutRecordBatch", throttling())
        faults.always("PutRecordBatch", PartialFailure(fraction=0.3, seed=5))
        result = forwarder.forward_many(batches)
    snapshot = forwarder.metrics.snapshot()

    def counter(name: str) -> int:
        return snapshot.counter(name, "events")

    assert not result.failed
    assert (152, 151) == (result.batches, result.sent)  # an empty batch is sent as it is
    assert result.throttled > 1  # the throttled call and the calls with throttled entries
    assert result.batches == counter("records_read")
    assert result.sent == counter("records_sent")
    assert len(result.skipped) + len(result.rejected) == counter("records_skipped") == 1
    assert result.retries == counter("retries")
    assert result.throttled == counter("throttled")
    assert result.api_calls == counter("aws_calls")
    assert (result.api_calls, True) == (
        snapshot.latencies[("aws_call_latency", "events")][0],
        snapshot.latencies[("aws_call_latency", "events")][1] > 0,
    )
    again = forwarder.forward_many(numbered(10))  # they go on adding up
    assert result.sent + again.sent == forwarder.metrics.snapshot().counter(
        "records_sent", "events"
    )


@pytest.mark.integration
def test_the_importers_counters_rise_with_its_run(aws: LocalAWS) -> None:
    """Through moto: at every poll the counters equal the totals so far; lag for each shard."""
    aws.create_stream("clicks", shards=2)
    aws.put_records("clicks", [{"name": "click", "n": n} for n in range(60)])
    aws.put_records("clicks", [{"no name": True}])
    calls: list[int] = []

    def sink(events: Sequence[PostHogEvent]) -> None:
        calls.append(len(events))

    settings = ImporterSettings(
        stream_name="clicks", event_key="name", start_position="TRIM_HORIZON"
    )
    importer = KinesisImporter(aws.client("kinesis"), settings, sink=sink, sleep=lambda _: None)
    seen: list[tuple[int, int]] = []

    def on_poll(_: object, totals: Any) -> None:
        snapshot = importer.metrics.snapshot()
        assert totals.records == snapshot.counter("records_read", "clicks")
        assert totals.events == snapshot.counter("events_delivered", "clicks")
        seen.append((totals.records, totals.events))

    totals = importer.run(until_caught_up=True, on_poll=on_poll)
    snapshot = importer.metrics.snapshot()
    assert (61, 60, 1) == (totals.records, totals.events, totals.skipped)
    assert 1 == snapshot.counter("records_skipped", "clicks")
    assert totals.calls == snapshot.counter("aws_calls", "clicks")
    assert totals.calls == snapshot.latencies[("aws_call_latency", "clicks")][0]
    assert len(calls) == snapshot.latencies[("sink_latency", "clicks")][0]
    assert {"clicks"} == {stream for stream, _ in snapshot.lag}
    assert 2 == len(snapshot.lag)
    assert seen[-1] == (61, 60)


# ---------------------------------------------------------------- Lambda: EMF lines


ARN = "arn:aws:kinesis:us-east-2:123456789012:stream/clicks"


def lambda_event(datas: list[bytes], first: int = 100) -> dict[str, Any]:
    """An event source mapping's event with these records' data."""
    return {
        "Records": [
            {
                "kinesis": {
                    "sequenceNumber": str(first + n),
                    "data": base64.b64encode(data).decode(),
                    "approximateArrivalTimestamp": 1545084650.987,
                },
                "eventSource": "aws:kinesis",
                "eventID": f"shardId-000000000006:{first + n}",
                "eventSourceARN": ARN,
            }
            for n, data in enumerate(datas)
        ]
    }


def emf_lines(out: str) -> list[dict[str, Any]]:
    """The EMF documents among the lines printed."""
    return [check_emf(line) for line in out.splitlines() if line.startswith('{"_aws"')]


def test_the_importers_lambda_prints_each_invocations_metrics(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """One EMF line per invocation, with that invocation's counts; Powertools' namespace."""
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "shop")
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "checkout")
    taken: list[int] = []
    handler = make_handler(
        ImporterSettings(stream_name="fallback", event_key="name"),
        lambda events: taken.append(len(events)),
        sink_calls_in_flight=1,
    )
    good = [json.dumps({"name": "click", "n": n}).encode() for n in range(5)]
    handler(lambda_event([*good, b"not json"]))
    handler(lambda_event(good[:2], first=200))
    first, second = emf_lines(capsys.readouterr().out)
    assert ("shop", "checkout", "clicks") == (
        first["_aws"]["CloudWatchMetrics"][0]["Namespace"],
        first["service"],
        first["stream"],
    )
    assert (6, 5, 1, 0) == (
        first["RecordsRead"],
        first["EventsDelivered"],
        first["RecordsSkipped"],
        first["SinkFailures"],
    )
    assert first["SinkLatency"] >= 0
    assert (2, 2, 0) == (second["RecordsRead"], second["EventsDelivered"], second["RecordsSkipped"])
    assert [5, 2] == taken


def test_the_importers_lambda_counts_a_failed_sink_call(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A sink that fails: SinkFailures 1, nothing delivered, the records left for a retry."""

    def down(_: Sequence[PostHogEvent]) -> None:
        raise RuntimeError("PostHog is down")

    handler = make_handler(
        ImporterSettings(stream_name="fallback", event_key="name"), down, sink_calls_in_flight=1
    )
    answer = handler(lambda_event([b'{"name": "a"}', b'{"name": "b"}']))
    assert 2 == len(answer["batchItemFailures"])
    (line,) = emf_lines(capsys.readouterr().out)
    assert (2, 0, 1) == (line["RecordsRead"], line["EventsDelivered"], line["SinkFailures"])


def test_metrics_lines_are_turned_off_by_the_environment_or_in_code(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """STREAMBRIDGE_METRICS=off (known to the zero-code handler), or emf=False: no line."""
    settings = ImporterSettings(stream_name="fallback", event_key="name")
    make_handler(settings, lambda _: None, emf=False)(lambda_event([b'{"name": "a"}']))
    monkeypatch.setenv("STREAMBRIDGE_METRICS", "off")
    make_handler(settings, lambda _: None)(lambda_event([b'{"name": "a"}']))
    assert not emf_lines(capsys.readouterr().out)
    env = {
        "STREAMBRIDGE_EVENT_KEY": "name",
        "POSTHOG_API_KEY": "phc_x",
        "STREAMBRIDGE_METRICS": "off",
    }
    assert handler_from_environment(env).emf is None
    with pytest.raises(ConfigurationError, match="STREAMBRIDGE_METRICS"):
        handler_from_environment({**env, "STREAMBRIDGE_METRICS": "sometimes"})
    named = handler_from_environment(
        {**env, "STREAMBRIDGE_METRICS": "on", "STREAMBRIDGE_METRICS_NAMESPACE": "ours"}
    )
    assert named.emf is not None
    assert "ours" == named.emf.namespace


@pytest.mark.integration
def test_the_forwarders_lambda_prints_each_invocations_metrics(
    aws: LocalAWS, ios: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """HTTP and Kinesis invocations each print their own line, dimension the delivery stream."""
    aws.create_delivery_stream("hook")
    client = aws.client("firehose")
    settings = ForwarderSettings(delivery_stream_name="hook", send_as_batch=False)
    receiver = WebhookReceiver(lambda: FirehoseForwarder(client, settings), authorization=None)
    handle = forwarder_lambda.make_handler(receiver)
    body = json.dumps(ios).encode()
    http = {
        "version": "2.0",
        "rawPath": "/",
        "headers": {},
        "requestContext": {"http": {"method": "POST"}},
        "body": body.decode(),
    }
    assert 200 == handle(http)["statusCode"]
    kinesis = lambda_event([body, body, b"no batch"])
    assert {"batchItemFailures": []} == handle(kinesis)
    first, second = emf_lines(capsys.readouterr().out)
    events = len(ios["events"])
    sent = len(aws.delivered("hook"))
    assert ("hook", 1, events) == (first["stream"], first["RecordsRead"], first["RecordsSent"])
    assert (2, 2 * events) == (second["RecordsRead"], second["RecordsSent"])
    assert first["RecordsSent"] + second["RecordsSent"] == sent
    assert first["AwsCalls"] >= 1
    assert first["AwsCallLatency"] > 0


def test_the_kcl_processor_counts_each_batch() -> None:
    """The KCL child feeds the same counters: a failed sink call, then the batch delivered."""
    from types import SimpleNamespace  # noqa: PLC0415

    from streambridge import KclRecordProcessor  # noqa: PLC0415

    calls: list[int] = []

    def sink(events: Sequence[PostHogEvent]) -> None:
        calls.append(len(events))
        if len(calls) == 1:
            raise RuntimeError("PostHog is down")

    processor = KclRecordProcessor(
        ImporterSettings(stream_name="clicks", event_key="name"), sink, sleep=lambda _: None
    )
    processor.initialize(SimpleNamespace(shard_id="shardId-000000000000", sequence_number="0"))
    checkpoints: list[tuple[object, ...]] = []
    checkpointer = SimpleNamespace(checkpoint=lambda *at: checkpoints.append(at))
    records = [
        {"data": base64.b64encode(b'{"name": "a"}').decode(), "sequenceNumber": "1"},
        {"data": base64.b64encode(b"not json").decode(), "sequenceNumber": "2"},
    ]
    processor.process_records(SimpleNamespace(records=records, checkpointer=checkpointer))
    snapshot = processor.metrics.snapshot()
    assert (2, 1, 1, 1) == (
        snapshot.counter("records_read", "clicks"),
        snapshot.counter("events_delivered", "clicks"),
        snapshot.counter("records_skipped", "clicks"),
        snapshot.counter("sink_failures", "clicks"),
    )
    assert 1 == snapshot.latencies[("sink_latency", "clicks")][0]
    assert [("2", 0)] == checkpoints
