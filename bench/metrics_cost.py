"""What the metrics cost on the hot paths (issue 22: at most 3 % of throughput).

Each engine runs the same work with its measurements on (the default) and with
``Metrics(enabled=False)``, interleaved, best of several runs, in this process: the
forwarder's ``forward_many`` into a Firehose answered through botocore with no endpoint,
the importer's polls of 32 canned shards (500 records a page) into a null sink, and a
10,000-record Lambda invocation (EMF line included, written to nowhere). Printed: records
per second off and on, and on / off (target >= 0.97).

    python bench/metrics_cost.py [--quick]
"""

from __future__ import annotations

import argparse
import base64
import gc
import statistics
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _timing import offline_client

from forwarder import event_batches
from importer import EVENT_KEY, _canned_importer, realistic_records
from streambridge import FirehoseForwarder, ForwarderSettings, ImporterSettings
from streambridge._emf import EmfWriter
from streambridge.importer.aws_lambda import LambdaHandler
from streambridge.metrics import Metrics
from streambridge.testing import AcceptAll, FaultInjector


def rate(work: Callable[[], int]) -> float:
    """Records per CPU second of one run of ``work``."""
    start = time.process_time()
    count = work()
    return count / (time.process_time() - start)


def compare(name: str, make: Callable[[Metrics], Callable[[], int]], rounds: int) -> None:
    """Runs with metrics off and on in pairs (either first); the median of the pairs' ratios.

    Pairs, not the best of each: this machine's speed drifts by more than the effect.
    """
    ratios, rates = [], {False: [], True: []}  # type: ignore[var-annotated]
    for round_ in range(rounds):
        pair = {}
        for enabled in (False, True) if round_ % 2 else (True, False):  # either goes first
            work = make(Metrics(enabled=enabled))
            gc.collect()  # the garbage of the run before is not this run's to pay
            pair[enabled] = rate(work)
            rates[enabled].append(pair[enabled])
        ratios.append(pair[True] / pair[False])
    ratios.sort()
    print(
        f"   {name}: {statistics.median(rates[False]):,.0f} records/s off, "
        f"{statistics.median(rates[True]):,.0f} on (medians); on / off, median of {rounds} "
        f"pairs {statistics.median(ratios):.3f} (pairs {ratios[0]:.2f}-{ratios[-1]:.2f}; "
        f"target >= 0.97)"
    )


class Counting(Metrics):
    """Metrics that count their own calls (for the accounting bound)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def add(self, name: str, stream: str, amount: int = 1) -> None:
        self.calls += 1
        super().add(name, stream, amount)

    def observe(self, name: str, stream: str, seconds: float) -> None:
        self.calls += 1
        super().observe(name, stream, seconds)

    def set_in_flight(self, stream: str, calls: int) -> None:
        self.calls += 1
        super().set_in_flight(stream, calls)

    def set_lag(self, stream: str, shard: str, millis: int) -> None:
        self.calls += 1
        super().set_lag(stream, shard, millis)

    def tap(self, fields: Mapping[str, str], stream: str) -> Callable[[str, int], None] | None:
        """The tap, each of its calls counted too (one that adds is counted twice: a bound)."""
        inner = super().tap(fields, stream)
        assert inner is not None

        def tap(field: str, amount: int) -> None:
            self.calls += 1
            inner(field, amount)

        return tap


def cost_per_call() -> float:
    """CPU seconds of the dearest metrics call (add through a tally's tap, observe, a gauge)."""
    metrics = Metrics()
    tap = metrics.tap({"records": "records_read"}, "s")
    assert tap is not None
    calls: dict[str, Callable[[], None]] = {
        "tap": lambda: tap("records", 500),
        "observe": lambda: metrics.observe("aws_call_latency", "s", 0.04),
        "lag": lambda: metrics.set_lag("s", "shardId-000000000000", 1000),
    }
    dearest = 0.0
    for call in calls.values():
        start = time.process_time()
        for _ in range(200_000):
            call()
        dearest = max(dearest, (time.process_time() - start) / 200_000)
    return dearest


def account(name: str, make: Callable[[Metrics], Callable[[], int]]) -> None:
    """An upper bound that noise cannot blur: the run's metrics calls x the dearest call's CPU,
    over the run's CPU with the metrics off."""
    counting = Counting()
    count = make(counting)()
    off = make(Metrics(enabled=False))
    gc.collect()
    start = time.process_time()
    off()
    spent = time.process_time() - start
    share = counting.calls * cost_per_call() / spent
    print(
        f"   {name}: {counting.calls:,} metrics calls for {count:,} records "
        f"({counting.calls / count:.4f} a record); at most {share * 100:.2f} % of the run's CPU"
    )


def forwarder_work(events: int) -> Callable[[Metrics], Callable[[], int]]:
    """forward_many of ``events`` sample events, one record each, into AcceptAll."""
    client = offline_client("firehose")
    FaultInjector(client).always("PutRecordBatch", AcceptAll())
    settings = ForwarderSettings(delivery_stream_name="events", send_as_batch=False)

    def make(metrics: Metrics) -> Callable[[], int]:
        forwarder = FirehoseForwarder(client, settings, metrics=metrics)
        batches = list(event_batches(events))
        return lambda: forwarder.forward_many(batches).sent

    return make


def importer_work(polls: int) -> Callable[[Metrics], Callable[[], int]]:
    """``polls`` passes over 32 canned shards of 500-record pages, into a null sink."""

    def make(metrics: Metrics) -> Callable[[], int]:
        importer, spy = _canned_importer(500, metrics=metrics)

        def work() -> int:
            with spy:
                return importer.run(max_polls=polls).records

        return work

    return make


def lambda_work(records: int) -> Callable[[Metrics], Callable[[], int]]:
    """One invocation of ``records`` records into a null sink; the EMF line to nowhere."""
    data = [base64.b64encode(r).decode() for r in realistic_records(records)]
    event = {
        "Records": [
            {
                "kinesis": {"sequenceNumber": str(10**20 + n), "data": d},
                "eventSource": "aws:kinesis",
                "eventID": f"shardId-000000000000:{10**20 + n}",
                "eventSourceARN": "arn:aws:kinesis:us-east-1:1:stream/s",
            }
            for n, d in enumerate(data)
        ]
    }
    settings = ImporterSettings(stream_name="s", event_key=EVENT_KEY)

    def make(metrics: Metrics) -> Callable[[], int]:
        handler = LambdaHandler(settings, lambda _: None, metrics=metrics, emf=False)
        handler.emf = EmfWriter("importer", write=lambda _: None) if metrics.enabled else None

        def work() -> int:
            handler(event)
            return records

        return work

    return make


def main() -> None:
    """Run each comparison."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    rounds = 3 if args.quick else 11
    works = {
        "forwarder, forward_many, 20,000 events": forwarder_work(20_000),
        "importer, 32 shards x 500-record pages": importer_work(4 if args.quick else 8),
        "importer Lambda, a 10,000-record invocation": lambda_work(10_000),
    }
    print("1. metrics on / off, in pairs (records per CPU second; this machine is noisy)")
    for name, make in works.items():
        compare(name, make, rounds)
    print("2. what the metrics calls can cost at most: calls counted x the dearest call's CPU")
    for name, make in works.items():
        account(name, make)


if __name__ == "__main__":
    main()
