"""Prometheus text at ``/metrics`` for the long-running commands (``--metrics-port``).

The ``metrics`` extra (prometheus-client, the Prometheus project's own client) serves a
:class:`~streambridge.metrics.Metrics` read at each scrape: counters as
``streambridge_<name>_total``, latencies as summaries in seconds, the lag as
``streambridge_lag_milliseconds{stream,shard}`` and the calls in flight as a gauge. Every
counter of the command's half is there from the start (at 0), so an alarm on a rate has a
series to read before the first record.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from streambridge.errors import ConfigurationError
from streambridge.metrics import MEASURES, Metrics

__all__ = ["MetricsCollector", "serve_metrics"]

PREFIX = "streambridge_"


class MetricsCollector:
    """A prometheus-client collector over one :class:`Metrics` (read at each scrape)."""

    def __init__(self, metrics: Metrics, half: str, streams: Sequence[str]) -> None:
        """Collect ``half``'s measurements, with a series for each of ``streams`` at once."""
        self.metrics = metrics
        self.half = half
        self.streams = tuple(streams)

    def describe(self) -> list[Any]:
        """Nothing: the registry then does not collect at registration."""
        return []

    def collect(self) -> Iterator[Any]:
        """The families, from a snapshot taken now."""
        from prometheus_client.core import (  # noqa: PLC0415 - the extra, when used
            CounterMetricFamily,
            GaugeMetricFamily,
            SummaryMetricFamily,
        )

        snapshot = self.metrics.snapshot()
        streams = sorted(set(self.streams) | set(snapshot.streams()))
        for measure in MEASURES:
            if self.half not in measure.halves:
                continue
            name = PREFIX + measure.name
            if measure.kind == "counter":
                counter = CounterMetricFamily(name, measure.help, labels=["stream"])
                for stream in streams:
                    counter.add_metric([stream], snapshot.counter(measure.name, stream))
                yield counter
            elif measure.kind == "latency":
                summary = SummaryMetricFamily(name + "_seconds", measure.help, labels=["stream"])
                for stream in streams:
                    count, seconds = snapshot.latencies.get((measure.name, stream), (0, 0.0))
                    summary.add_metric([stream], count_value=count, sum_value=seconds)
                yield summary
            elif measure.name == "lag":
                lag = GaugeMetricFamily(
                    PREFIX + "lag_milliseconds", measure.help, labels=["stream", "shard"]
                )
                for (stream, shard), millis in sorted(snapshot.lag.items()):
                    lag.add_metric([stream, shard], millis)
                yield lag
            else:
                flying = GaugeMetricFamily(name, measure.help, labels=["stream"])
                for stream in streams:
                    flying.add_metric([stream], snapshot.in_flight.get(stream, 0))
                yield flying


def serve_metrics(
    metrics: Metrics, half: str, streams: Sequence[str], *, port: int, address: str
) -> Callable[[], None]:
    """Serve ``metrics`` at ``http://address:port/metrics`` from a thread; returns its stop.

    Raises:
        ConfigurationError: prometheus-client is not installed (the ``metrics`` extra), or the
            port cannot be bound.
    """
    try:
        from prometheus_client import CollectorRegistry, start_http_server  # noqa: PLC0415
    except ImportError:
        msg = "--metrics-port needs prometheus-client: pip install 'streambridge[metrics]'"
        raise ConfigurationError(msg) from None
    registry = CollectorRegistry(auto_describe=False)
    registry.register(MetricsCollector(metrics, half, streams))
    try:
        server, thread = start_http_server(port, addr=address, registry=registry)
    except OSError as exc:
        raise ConfigurationError(f"cannot serve metrics on {address}:{port}: {exc}") from None

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    return stop
