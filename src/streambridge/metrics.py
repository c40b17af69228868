"""What a run is doing, for operators: a few measurements, defined once, fed by every engine.

Both halves and every way in (the library's classes, the commands, both Lambda handlers, the
KCL child) add to a :class:`Metrics`: records read, sent, failed, skipped, retried and
throttled, events delivered, calls to AWS and to the sink with their latency, calls in flight,
and each shard's lag (``MillisBehindLatest``). Each is kept per stream — the Kinesis stream
(importer) or the Firehose delivery stream (forwarder) — and never per shard, but for the lag.

No exporter is needed: :meth:`Metrics.snapshot` reads them. The Lambda handlers print
CloudWatch Embedded Metric Format lines (:func:`emf_document`); the long-running commands
serve Prometheus text (``--metrics-port``, :mod:`streambridge._prometheus`). What each
measurement means, and the alarm to set on it, is in docs/operations.md.

Pure: no I/O, no boto3. Adding is a dict update under a lock, once per page or call, never
per record.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Literal

import attrs

__all__ = [
    "FORWARDER_FIELDS",
    "IMPORTER_FIELDS",
    "MEASURES",
    "Measure",
    "Metrics",
    "MetricsSnapshot",
    "emf_document",
]

Kind = Literal["counter", "latency", "gauge"]


@attrs.frozen
class Measure:
    """One measurement: its name, kind, meaning and its names elsewhere.

    Attributes:
        name: The name in :class:`MetricsSnapshot` (``records_read``); Prometheus adds
            ``streambridge_`` and, for a counter, ``_total``.
        kind: ``counter`` (only grows), ``latency`` (a count and a sum of seconds) or
            ``gauge`` (a value now).
        help: What it counts.
        emf_name: Its name in a CloudWatch EMF line (``RecordsRead``).
        halves: The halves that feed it: ``importer``, ``forwarder``.
    """

    name: str
    kind: Kind
    help: str
    emf_name: str
    halves: tuple[str, ...] = ("importer", "forwarder")


#: Every measurement, in the order they are shown.
MEASURES: tuple[Measure, ...] = (
    Measure(
        "records_read",
        "counter",
        "Input records read: Kinesis records (importer), mParticle batches (forwarder)",
        "RecordsRead",
    ),
    Measure(
        "events_delivered",
        "counter",
        "PostHog events the destination confirmed",
        "EventsDelivered",
        ("importer",),
    ),
    Measure("records_sent", "counter", "Firehose records delivered", "RecordsSent", ("forwarder",)),
    Measure(
        "records_failed",
        "counter",
        "Firehose records that failed for good (returned as failed, dead-lettered)",
        "RecordsFailed",
        ("forwarder",),
    ),
    Measure(
        "records_skipped",
        "counter",
        "Input records skipped with a reason: records that give no event (importer), batches "
        "skipped or rejected (forwarder)",
        "RecordsSkipped",
    ),
    Measure(
        "events_dropped",
        "counter",
        "Malformed events removed from batches",
        "EventsDropped",
        ("forwarder",),
    ),
    Measure(
        "events_filtered",
        "counter",
        "Events left out by the connection settings (lifecycle events, ...)",
        "EventsFiltered",
        ("forwarder",),
    ),
    Measure(
        "sink_failures",
        "counter",
        "Sink calls that failed (their records are read again: nothing is checkpointed past them)",
        "SinkFailures",
        ("importer",),
    ),
    Measure("aws_calls", "counter", "Calls to AWS (GetRecords, PutRecordBatch, ...)", "AwsCalls"),
    Measure(
        "bytes_sent",
        "counter",
        "Bytes of the Firehose records delivered",
        "BytesSent",
        ("forwarder",),
    ),
    Measure(
        "bytes_billed",
        "counter",
        "Bytes Firehose bills for them: each record rounded up to the next 5 KB",
        "BytesBilled",
        ("forwarder",),
    ),
    Measure(
        "retries",
        "counter",
        "Calls made again after throttling or a transient error",
        "Retries",
        ("forwarder",),
    ),
    Measure("throttled", "counter", "AWS calls throttled, wholly or in part", "Throttled"),
    Measure(
        "sink_latency",
        "latency",
        "Seconds each sink call took (PostHog's answer)",
        "SinkLatency",
        ("importer",),
    ),
    Measure("aws_call_latency", "latency", "Seconds each call to AWS took", "AwsCallLatency"),
    Measure(
        "calls_in_flight", "gauge", "Sink (importer) or AWS (forwarder) calls in flight now", ""
    ),
    Measure(
        "lag",
        "gauge",
        "Milliseconds each shard's last read was behind the stream's tip (MillisBehindLatest)",
        "",
        ("importer",),
    ),
)

#: :class:`~streambridge.ImportResult` fields and the counters they feed.
IMPORTER_FIELDS: Mapping[str, str] = {
    "records": "records_read",
    "event_count": "events_delivered",
    "skipped": "records_skipped",
    "sink_failures": "sink_failures",
    "calls": "aws_calls",
    "throttled": "throttled",
}

#: :class:`~streambridge.ForwardResult` fields and the counters they feed.
FORWARDER_FIELDS: Mapping[str, str] = {
    "batches": "records_read",
    "sent": "records_sent",
    "failed": "records_failed",
    "skipped": "records_skipped",
    "rejected": "records_skipped",
    "dropped_reasons": "events_dropped",
    "filtered_events": "events_filtered",
    "api_calls": "aws_calls",
    "retries": "retries",
    "throttled": "throttled",
    "sent_bytes": "bytes_sent",
    "billed_bytes": "bytes_billed",
}


@attrs.frozen
class MetricsSnapshot:
    """The measurements at one moment.

    Attributes:
        counters: ``{(name, stream): value}`` of every counter added to.
        latencies: ``{(name, stream): (count, seconds)}``.
        in_flight: ``{stream: calls}``.
        lag: ``{(stream, shard): milliseconds}``.
    """

    counters: Mapping[tuple[str, str], int] = attrs.field(factory=dict)
    latencies: Mapping[tuple[str, str], tuple[int, float]] = attrs.field(factory=dict)
    in_flight: Mapping[str, int] = attrs.field(factory=dict)
    lag: Mapping[tuple[str, str], int] = attrs.field(factory=dict)

    def counter(self, name: str, stream: str) -> int:
        """A counter's value (0 when never added to)."""
        return self.counters.get((name, stream), 0)

    def since(self, before: MetricsSnapshot) -> MetricsSnapshot:
        """What was added after ``before`` (counters and latencies); gauges as they are now."""
        counters = {k: v - before.counters.get(k, 0) for k, v in self.counters.items()}
        latencies = {}
        for key, (count, seconds) in self.latencies.items():
            was = before.latencies.get(key, (0, 0.0))
            latencies[key] = (count - was[0], seconds - was[1])
        return MetricsSnapshot(counters, latencies, self.in_flight, self.lag)

    def streams(self) -> list[str]:
        """Every stream measured, sorted."""
        names = {stream for _, stream in self.counters} | {s for _, s in self.latencies}
        return sorted(names | set(self.in_flight) | {stream for stream, _ in self.lag})


class Metrics:
    """The measurements of one engine (or of several: it is safe from any thread).

    Example::

        importer = KinesisImporter(client, settings, sink=sink)
        importer.run(until_caught_up=True)
        read = importer.metrics.snapshot().counter("records_read", settings.stream_name)

    ``Metrics(enabled=False)`` keeps nothing and costs nothing.
    """

    def __init__(self, *, enabled: bool = True) -> None:
        """Empty measurements; ``enabled=False``: every method does nothing."""
        self.enabled = enabled
        self._lock = threading.Lock()
        self._counters: dict[tuple[str, str], int] = {}
        self._latencies: dict[tuple[str, str], tuple[int, float]] = {}
        self._in_flight: dict[str, int] = {}
        self._lag: dict[tuple[str, str], int] = {}

    def add(self, name: str, stream: str, amount: int = 1) -> None:
        """Add ``amount`` to the counter ``name`` of ``stream``."""
        if not self.enabled:
            return
        key = (name, stream)
        with self._lock:
            self._counters[key] = self._counters.get(key, 0) + amount

    def observe(self, name: str, stream: str, seconds: float) -> None:
        """Note one call of ``seconds`` in the latency ``name`` of ``stream``."""
        if not self.enabled:
            return
        key = (name, stream)
        with self._lock:
            count, total = self._latencies.get(key, (0, 0.0))
            self._latencies[key] = (count + 1, total + seconds)

    def set_in_flight(self, stream: str, calls: int) -> None:
        """The calls of ``stream`` in flight now."""
        if self.enabled:
            with self._lock:
                self._in_flight[stream] = calls

    def set_lag(self, stream: str, shard: str, millis: int) -> None:
        """How far behind the tip ``shard``'s last read was."""
        if self.enabled:
            with self._lock:
                self._lag[(stream, shard)] = millis

    def forget_shard(self, stream: str, shard: str) -> None:
        """Drop a shard's lag (it ended, or another worker took it)."""
        if self.enabled:
            with self._lock:
                self._lag.pop((stream, shard), None)

    def tap(self, fields: Mapping[str, str], stream: str) -> Callable[[str, int], None] | None:
        """A function that adds a result field's count to its counter (``fields`` maps them).

        Given to a result's tally (:class:`~streambridge._tally.Tally`), so that a run's
        measurements rise as it works, not only when it returns. None when disabled.
        """
        if not self.enabled:
            return None

        def tap(field: str, amount: int) -> None:
            name = fields.get(field)
            if name is not None and amount:
                self.add(name, stream, amount)

        return tap

    def snapshot(self) -> MetricsSnapshot:
        """The measurements now."""
        with self._lock:
            return MetricsSnapshot(
                dict(self._counters), dict(self._latencies), dict(self._in_flight), dict(self._lag)
            )


def emf_document(
    snapshot: MetricsSnapshot,
    *,
    half: str,
    stream: str,
    namespace: str,
    service: str,
    timestamp: float | None = None,
) -> dict[str, object]:
    """One CloudWatch Embedded Metric Format document: ``half``'s measurements of ``stream``.

    The shape Powertools for AWS Lambda writes (``_aws.CloudWatchMetrics`` with the namespace,
    the dimension sets and each metric's unit; the values and dimensions at the top level),
    with the dimensions ``service`` and ``stream`` — never the shard: each dimension value
    is a custom metric, billed. Counters are given as they are in ``snapshot`` (a handler
    passes what one invocation added); a latency as its mean in milliseconds, when any call
    was timed.
    """
    metrics: list[dict[str, str]] = []
    values: dict[str, object] = {}
    for measure in MEASURES:
        if half not in measure.halves or not measure.emf_name:
            continue
        key = (measure.name, stream)
        if measure.kind == "counter":
            unit = "Bytes" if measure.name.startswith("bytes_") else "Count"
            metrics.append({"Name": measure.emf_name, "Unit": unit})
            values[measure.emf_name] = snapshot.counters.get(key, 0)
        elif measure.kind == "latency":
            count, seconds = snapshot.latencies.get(key, (0, 0.0))
            if count:
                metrics.append({"Name": measure.emf_name, "Unit": "Milliseconds"})
                values[measure.emf_name] = round(seconds / count * 1000, 3)
    moment = time.time() if timestamp is None else timestamp
    return {
        "_aws": {
            "Timestamp": int(moment * 1000),
            "CloudWatchMetrics": [
                {
                    "Namespace": namespace,
                    "Dimensions": [["service", "stream"]],
                    "Metrics": metrics,
                }
            ],
        },
        "service": service,
        "stream": stream,
        **values,
    }
