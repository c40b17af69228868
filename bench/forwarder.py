"""Forwarder benchmarks: ratios against baselines measured in the same run.

Run:  python bench/forwarder.py            (all five; needs the `local` and `fast` extras)
      python bench/forwarder.py --quick    (smaller sizes, for a smoke run)

1. Core throughput: filter + exclude + encode (default settings, the sample batches) against a
   bare ``json.dumps`` of the same batches — with the stdlib encoder and with orjson.
2. PutRecordBatch calls for 100,000 events against the lower bound
   max(ceil(records / 500), ceil(bytes / 4 MB)), both framings.
3. End to end against the local moto server: ``forward_many`` against a naive loop of one
   ``put_record`` per batch, in records per second.
4. Peak traced memory forwarding 100k and 1M events from a generator (each measured in a fresh
   subprocess), into a null sink that still runs botocore's serialiser and parser.
5. Throughput at network latency (T1, T2 of issue 11): records/s with 40 ms injected before
   each call (``streambridge.testing.Latency``, which lets calls overlap) against the same with
   none, one record per event and Send as Batch; and ``FirehoseForwarder.send`` against a plain
   8-thread boto3 sender of the same encoded records.
6. CPU per record (issue 19), one record per event, to a Firehose stand-in in its own process
   (``_stub_kinesis.py``, over HTTP): ``forward_many`` on the client ``from_settings`` builds,
   and on a plain injected ``boto3.client``, against the wire floor — orjson dumps of the same
   record payloads, their base64 and the request JSON of each 500; and ``streambridge forward``
   on a JSON-lines file against the library reading the same file (orjson per line) and
   forwarding it, each in a fresh process (CPU of the whole process: interpreter and imports
   included for both).

Run one:  python bench/forwarder.py --only cpu
"""

from __future__ import annotations

import argparse
import base64
import gc
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import attrs
from _timing import StandIn, best_rate, in_child, offline_client

from streambridge import FirehoseForwarder, ForwarderSettings
from streambridge._demo import sample_batches
from streambridge.forwarder.encoding import (
    HAS_ORJSON,
    MAX_BATCH_BYTES,
    encode_record,
    encode_record_stdlib,
)
from streambridge.forwarder.filtering import filter_batch
from streambridge.forwarder.framing import record_payloads
from streambridge.testing import AcceptAll, FaultInjector, Latency, local_aws

SETTINGS = ForwarderSettings(delivery_stream_name="bench")
SAMPLES = [batch for _, batch in sample_batches()]
SAMPLE_TEXTS = [json.dumps(batch) for batch in SAMPLES]


def bench_core(seconds: float) -> None:
    """Filter + exclude + encode vs bare json.dumps, interleaved so noise hits both."""
    batches = SAMPLES * 20
    excluding = attrs.evolve(SETTINGS, metadata_field_exclusion=("Device Name", "IP Address"))

    def baseline() -> int:
        for batch in batches:
            json.dumps(batch)
        return len(batches)

    def core(settings: ForwarderSettings, encode: Callable[[Any], bytes]) -> Callable[[], int]:
        def run() -> int:
            for batch in batches:
                out = filter_batch(batch, settings)
                if out is not None:
                    encode(out)
            return len(batches)

        return run

    rates: dict[str, list[float]] = {"json.dumps": [], "stdlib": [], "stdlib+excl": []}
    if HAS_ORJSON:
        rates |= {"orjson": [], "orjson+excl": []}
    runs = {
        "json.dumps": baseline,
        "stdlib": core(SETTINGS, encode_record_stdlib),
        "stdlib+excl": core(excluding, encode_record_stdlib),
        "orjson": core(SETTINGS, encode_record),
        "orjson+excl": core(excluding, encode_record),
    }
    for _ in range(5):
        for name in rates:
            rates[name].append(best_rate(runs[name], seconds / 25))
    base = max(rates["json.dumps"])
    print("1. core throughput (filter + exclude + encode) / bare json.dumps, sample batches")
    print(f"   json.dumps baseline: {base:,.0f} batches/s")
    for name, values in rates.items():
        if name != "json.dumps":
            target = "3.0" if name.startswith("orjson") else "0.8"
            print(
                f"   {name:<12} {max(values):>10,.0f} batches/s   ratio {max(values) / base:5.2f}"
                f"   (target >= {target})"
            )


def event_batches(n_events: int) -> Iterator[dict[str, Any]]:
    """Fresh sample batches (decoded anew, as from a file) until `n_events` events were made."""
    made = 0
    while made < n_events:
        for text in SAMPLE_TEXTS:
            batch = json.loads(text)
            made += len(batch["events"])
            yield batch
            if made >= n_events:
                return


def null_client() -> tuple[Any, AcceptAll]:
    """A boto3 Firehose client whose puts AcceptAll answers through botocore (no endpoint)."""
    client = offline_client("firehose")
    sink = AcceptAll()
    FaultInjector(client).always("PutRecordBatch", sink)
    return client, sink


def null_sink_forwarder(settings: ForwarderSettings) -> tuple[FirehoseForwarder, AcceptAll]:
    """A forwarder whose boto3 client answers success through botocore, with no endpoint."""
    client, sink = null_client()
    return FirehoseForwarder(client, settings), sink


def bench_latency(n_events: int, latency: float, rounds: int) -> None:
    """Records/s at `latency` seconds per call / at none; and a plain threaded boto3 sender."""
    print(
        f"5. records/s with {latency * 1000:.0f} ms per call / with none, {n_events:,} sample "
        f"events (null endpoint: AcceptAll answers through botocore; Latency sleeps first)"
    )

    def ours(settings: ForwarderSettings, delay: float) -> float:
        client, sink = null_client()
        forwarder = FirehoseForwarder(client, settings)
        batches = list(event_batches(n_events))
        with Latency(client, delay):
            start = time.perf_counter()
            result = forwarder.forward_many(batches)
            elapsed = time.perf_counter() - start
        assert result.ok
        assert result.sent == sink.records
        return result.sent / elapsed

    for name, settings in (
        ("T1 one record per event", attrs.evolve(SETTINGS, send_as_batch=False)),
        ("T2 Send as Batch       ", SETTINGS),
    ):
        zero = max(ours(settings, 0.0) for _ in range(rounds))
        slow = max(ours(settings, latency) for _ in range(rounds))
        print(
            f"   {name}: {zero:>9,.0f} records/s at 0 ms, {slow:>9,.0f} at "
            f"{latency * 1000:.0f} ms: ratio {slow / zero:.2f} (target >= 0.8)"
        )

    per_event = attrs.evolve(SETTINGS, send_as_batch=False)
    records = [
        encode_record(payload) + b"\n"
        for batch in event_batches(n_events)
        for payload in record_payloads(filter_batch(batch, per_event) or {}, send_as_batch=False)
    ]

    def plain(threads: int) -> float:
        """Threads sending the same encoded records in 500-record calls: what a user could write."""
        client, sink = null_client()
        groups = [records[i : i + 500] for i in range(0, len(records), 500)]

        def send(group: list[bytes]) -> None:
            client.put_record_batch(
                DeliveryStreamName="bench", Records=[{"Data": r} for r in group]
            )

        with Latency(client, latency), ThreadPoolExecutor(threads) as pool:
            start = time.perf_counter()
            list(pool.map(send, groups))
            elapsed = time.perf_counter() - start
        assert sink.records == len(records)
        return len(records) / elapsed

    def ours_send() -> float:
        client, sink = null_client()
        forwarder = FirehoseForwarder(client, per_event)
        with Latency(client, latency):
            start = time.perf_counter()
            result = forwarder.send(records)
            elapsed = time.perf_counter() - start
        assert result.sent == sink.records == len(records)
        return len(records) / elapsed

    theirs = max(plain(8) for _ in range(rounds))
    mine = max(ours_send() for _ in range(rounds))
    print(
        f"   the same {len(records):,} encoded records at {latency * 1000:.0f} ms: a plain "
        f"8-thread boto3 sender {theirs:,.0f} records/s; FirehoseForwarder.send {mine:,.0f}: "
        f"ratio {mine / theirs:.2f}"
    )


def bench_calls(n_events: int) -> None:
    """PutRecordBatch calls for n events vs the lower bound."""
    print(
        f"2. PutRecordBatch calls for {n_events:,} events / lower bound "
        f"max(ceil(records/500), ceil(bytes/{MAX_BATCH_BYTES:,}))"
    )
    for send_as_batch in (True, False):
        settings = attrs.evolve(SETTINGS, send_as_batch=send_as_batch)
        forwarder, sink = null_sink_forwarder(settings)
        result = forwarder.forward_many(event_batches(n_events))
        bound = max(math.ceil(sink.records / 500), math.ceil(sink.data_bytes / MAX_BATCH_BYTES))
        print(
            f"   send_as_batch={send_as_batch!s:<5}: {sink.records:>7,} records, "
            f"{sink.data_bytes:>13,} bytes, {result.api_calls:>4} calls, bound {bound:>4}, "
            f"ratio {result.api_calls / bound:.2f} (target 1.00, at most one extra call)"
        )


def bench_end_to_end(n_batches: int, rounds: int = 3) -> None:
    """forward_many vs one put_record per batch, against moto's server; best of `rounds`."""
    batches = [json.loads(SAMPLE_TEXTS[i % len(SAMPLE_TEXTS)]) for i in range(n_batches)]
    print(f"3. end to end on the local moto server, {n_batches} sample batches, best of {rounds}")
    with local_aws() as aws:

        def fresh_stream() -> None:
            aws.reset()
            aws.create_delivery_stream("bench")

        def naive() -> float:
            fresh_stream()
            client = aws.client("firehose")
            client.describe_delivery_stream(DeliveryStreamName="bench")  # warm: model, connection
            start = time.perf_counter()
            for batch in batches:
                data = json.dumps(batch).encode()
                client.put_record(DeliveryStreamName="bench", Record={"Data": data})
            return n_batches / (time.perf_counter() - start)

        def ours(send_as_batch: bool) -> tuple[float, int, int]:
            fresh_stream()
            settings = attrs.evolve(SETTINGS, send_as_batch=send_as_batch)
            forwarder = FirehoseForwarder(aws.client("firehose"), settings)
            forwarder.check()  # warm the client the same way as the naive one
            start = time.perf_counter()
            result = forwarder.forward_many(batches)
            elapsed = time.perf_counter() - start
            assert result.ok
            assert result.sent == len(aws.delivered("bench"))
            return result.sent / elapsed, result.sent, result.api_calls

        naive_rate = max(naive() for _ in range(rounds))
        print(f"   naive put_record loop:             {naive_rate:>9,.0f} records/s")
        for send_as_batch in (True, False):
            runs = [ours(send_as_batch) for _ in range(rounds)]
            rate, sent, calls = max(runs)
            print(
                f"   forward_many send_as_batch={send_as_batch!s:<5}: {rate:>9,.0f} records/s "
                f"({sent:,} records, {calls} calls)   ratio {rate / naive_rate:6.1f}x "
                f"(target >= 20x)"
            )


def memory_child(n_events: int) -> None:
    """Runs in a subprocess: forward n events from a generator, print the traced peak."""
    forwarder, sink = null_sink_forwarder(SETTINGS)
    gc.collect()
    tracemalloc.start()
    result = forwarder.forward_many(event_batches(n_events))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(
        json.dumps(
            {"events": n_events, "records": result.sent, "peak": peak, "bytes": sink.data_bytes}
        )
    )


def bench_memory(sizes: list[int]) -> None:
    """Peak traced memory for each size, each in a fresh interpreter."""
    print("4. peak traced memory forwarding events from a generator (null sink, real botocore)")
    peaks = []
    for n in sizes:
        data = in_child(__file__, "--memory-child", n)
        peaks.append(data["peak"])
        print(
            f"   {n:>9,} events: {data['records']:>7,} records, {data['bytes'] / 1e6:>8,.1f} MB "
            f"forwarded, peak {data['peak'] / 1e6:6.2f} MB"
        )
    print(
        f"   peak ratio largest/smallest: {peaks[-1] / peaks[0]:.2f} for "
        f"{sizes[-1] / sizes[0]:.0f}x the events (flat = about 1)"
    )


PER_EVENT = attrs.evolve(
    SETTINGS,
    send_as_batch=False,
    region="us-east-1",
    access_key_id="bench",
    secret_access_key="bench",
)


def wire_floor(payloads: list[dict[str, Any]]) -> int:
    """The floor: orjson dumps of each payload, its base64, the request JSON of each 500."""
    import orjson  # noqa: PLC0415 - the floor is orjson's

    for start in range(0, len(payloads), 500):
        records = [
            {"Data": base64.b64encode(orjson.dumps(payload) + b"\n").decode()}
            for payload in payloads[start : start + 500]
        ]
        orjson.dumps({"DeliveryStreamName": "bench", "Records": records})
    return len(payloads)


def cpu_child(path: str, endpoint: str) -> None:
    """Runs in a fresh process: the library forwarding a JSON-lines file, as a user would."""
    from streambridge._json import loads  # noqa: PLC0415 - orjson, exact integers kept

    forwarder = FirehoseForwarder.from_settings(PER_EVENT, endpoint_url=endpoint)
    with open(path, "rb") as lines:  # noqa: PTH123
        result = forwarder.forward_many(loads(line) for line in lines if line.strip())
    print(json.dumps({"sent": result.sent}))


def child_cpu(command: list[str], env: dict[str, str]) -> float:
    """CPU seconds (user + system) of a fresh process running ``command``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert done.returncode == 0, done.stderr[-2000:]
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def bench_cpu(n_events: int, rounds: int) -> None:
    """CPU per record: forward_many vs the wire floor; the command line vs the library."""
    print(
        f"6. CPU per record, {n_events:,} sample events one record per event, to a Firehose "
        f"stand-in in its own process; best of {rounds}"
    )
    if not HAS_ORJSON:
        print("   needs orjson (the fast extra): the floor is orjson's")
        return
    import boto3  # noqa: PLC0415

    stub = StandIn("_stub_kinesis.py", "--shards", 1, "--records", 0)
    try:
        payloads = [
            payload
            for batch in event_batches(n_events)
            for payload in record_payloads(
                filter_batch(batch, PER_EVENT) or {}, send_as_batch=False
            )
        ]
        built = FirehoseForwarder.from_settings(PER_EVENT, endpoint_url=stub.url)
        injected = FirehoseForwarder(
            boto3.client(
                "firehose",
                region_name="us-east-1",
                endpoint_url=stub.url,
                aws_access_key_id="bench",
                aws_secret_access_key="bench",
            ),
            PER_EVENT,
        )
        for forwarder in (built, injected):
            forwarder.forward_many(list(event_batches(2_000)))  # warm: model, connections

        def ours(forwarder: FirehoseForwarder) -> float:
            batches = list(event_batches(n_events))
            gc.collect()
            start = time.process_time()
            result = forwarder.forward_many(batches)
            cpu = time.process_time() - start
            assert result.ok
            assert result.sent == len(payloads), (result.sent, len(payloads))
            return cpu

        def floor() -> float:
            gc.collect()
            start = time.process_time()
            wire_floor(payloads)
            return time.process_time() - start

        cpu: dict[str, list[float]] = {"floor": [], "ours": [], "injected": []}
        for _ in range(rounds):
            cpu["floor"].append(floor())
            cpu["ours"].append(ours(built))
            cpu["injected"].append(ours(injected))
        best = {name: min(values) for name, values in cpu.items()}
        per = {name: value / len(payloads) * 1e6 for name, value in best.items()}
        print(
            f"   {len(payloads):,} records: the wire floor {per['floor']:.1f} us/record; "
            f"forward_many {per['ours']:.1f} us (client from_settings builds), "
            f"{per['injected']:.1f} us (an injected boto3.client)"
        )
        print(
            f"   forward_many / floor: {best['ours'] / best['floor']:.2f}x (target <= 3); "
            f"injected client {best['injected'] / best['floor']:.2f}x"
        )
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "batches.jsonl")  # noqa: PTH118
            with open(path, "w") as out:  # noqa: PTH123
                out.writelines(json.dumps(batch) + "\n" for batch in event_batches(n_events))
            settings = os.path.join(folder, "settings.json")  # noqa: PTH118
            with open(settings, "w") as out:  # noqa: PTH123
                json.dump({"Delivery Stream Name": "bench", "Send as Batch": False}, out)
            env = dict(
                os.environ,
                AWS_ACCESS_KEY_ID="bench",
                AWS_SECRET_ACCESS_KEY="bench",
                AWS_DEFAULT_REGION="us-east-1",
            )
            cli = [sys.executable, "-m", "streambridge", "forward", path, "--settings"]
            cli += [settings, "--endpoint-url", stub.url, "--quiet"]
            library = [sys.executable, __file__, "--cpu-child", path, stub.url]
            both: dict[str, list[float]] = {"cli": [], "library": []}
            for _ in range(rounds):
                both["library"].append(child_cpu(library, env))
                both["cli"].append(child_cpu(cli, env))
            cli_cpu, lib_cpu = min(both["cli"]), min(both["library"])
            print(
                f"   the same as JSON lines, a fresh process each: streambridge forward "
                f"{cli_cpu:.2f} CPU-s, the library {lib_cpu:.2f} CPU-s: "
                f"{cli_cpu / lib_cpu:.2f}x (target <= 1.1)"
            )
    finally:
        stub.close()


def main() -> None:
    """Run the benchmarks."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", choices=["core", "calls", "e2e", "memory", "latency", "cpu"])
    parser.add_argument("--memory-child", type=int)
    parser.add_argument("--cpu-child", nargs=2, metavar=("FILE", "ENDPOINT"))
    args = parser.parse_args()
    if args.memory_child:
        memory_child(args.memory_child)
        return
    if args.cpu_child:
        cpu_child(*args.cpu_child)
        return
    print(f"orjson installed: {HAS_ORJSON}; Python {sys.version.split()[0]}")
    runs: dict[str, Callable[[], None]] = {
        "core": lambda: bench_core(seconds=2.0 if args.quick else 10.0),
        "calls": lambda: bench_calls(10_000 if args.quick else 100_000),
        "e2e": lambda: bench_end_to_end(100 if args.quick else 1000),
        "memory": lambda: bench_memory([10_000, 100_000] if args.quick else [100_000, 1_000_000]),
        "latency": lambda: bench_latency(20_000, 0.04, rounds=1 if args.quick else 3),
        "cpu": lambda: bench_cpu(20_000 if args.quick else 100_000, rounds=2 if args.quick else 5),
    }
    for name, run in runs.items():
        if args.only in (None, name):
            run()


if __name__ == "__main__":
    main()
