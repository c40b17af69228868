"""Kinesis -> PostHog at PostHog's real latency (issue 19): ratios measured in one run.

Run:  python bench/posthog_path.py            (needs the `local` and `fast` extras; posthog-python
                                               for the request-building comparison)
      python bench/posthog_path.py --quick    (shorter runs)

Both stand-ins run in processes of their own, over real HTTP on loopback:
``_stub_kinesis.py`` (32 open shards, 500 records a call, 40 ms a call) and ``_stub_posthog.py``
(``POST /batch/``: gunzips, parses and counts every event and its uuid, answers 200 after the
latency under test).

1. End to end: the importer with library defaults (a default boto3 client, ``PostHogSink``)
   in a fresh interpreter for each latency, 0 / 50 / 150 ms. Events per second counted by the
   PostHog stand-in (distinct uuids), and the importer's CPU seconds per 1M events against its
   floor (the GetRecords body's loads, base64, each record's loads and its event's dumps),
   both measured in the importer's process over three rounds side by side, the best of each.
   Targets: 0.9x the 0 ms rate at 50 ms, 0.8x at 150 ms; CPU at most 4x the floor.
2. Lambda: a 10,000-record invocation of ``make_handler(settings, PostHogSink(...))`` at 50 ms,
   against the same records converted and sent in one request. Target: at most 1.5x its time.
3. Building and sending a request: CPU per event of ``PostHogSink`` (each event encoded once,
   gzip at each level) against posthog-python's ``batch_post`` as the sink used it until 0.2
   (each event encoded twice for its checks, then stdlib JSON, the non-finite walk, gzip 9);
   ours encodes each event once (in the importer, the converter does it); bytes per event on
   the wire, for 10,000 varied records (``bench/importer.py``'s). This
   decides the default gzip level.
"""

from __future__ import annotations

import argparse
import base64
import functools
import json
import os
import resource
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from _timing import StandIn

HERE = Path(__file__).resolve().parent
ENV = {**os.environ, "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x"}
EVENT_KEY = "properties.eventName"
MAPPINGS = "properties.userId:distinct_id,properties.plan:plan,context.page.path:path"


#: Rounds of (floor, run) in each importer process.
ROUNDS = 3


def past(moment: float) -> bool:
    """Whether ``time.monotonic()`` is past ``moment``."""
    return time.monotonic() >= moment


def cpu_seconds() -> float:
    """This process's CPU time so far (user + system)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def importer_child(kinesis: str, posthog: str, seconds: float, client_kind: str) -> None:
    """Runs in a subprocess: the importer with library defaults into PostHog, for ``seconds``.

    ``client_kind`` "ours": the client ``KinesisImporter.from_settings`` builds (as the command
    line does); "injected": a plain ``boto3.client("kinesis")``.
    """
    import boto3  # noqa: PLC0415

    from streambridge import ImporterSettings, KinesisImporter, PostHogSink  # noqa: PLC0415

    settings = ImporterSettings(
        stream_name="s",
        event_key=EVENT_KEY,
        additional_property_mappings=MAPPINGS,
        region="us-east-1",
    )
    sink = PostHogSink(api_key="phc_bench", host=posthog)
    if client_kind == "ours":
        importer = KinesisImporter.from_settings(settings, endpoint_url=kinesis, sink=sink)
    else:
        client = boto3.client("kinesis", region_name="us-east-1", endpoint_url=kinesis)
        importer = KinesisImporter(client, settings, sink=sink)
    # Three rounds, each the floor's windows then a third of the run: both sides measured in
    # this process, side by side, and the best round of each taken (this machine's speed
    # drifts over minutes, and a floor taken apart from the run made the ratio swing 3-5x).
    events, elapsed, floors, per_event = 0, 0.0, [], []
    for _ in range(ROUNDS):
        floors.append(floor_per_million())
        cpu, start = cpu_seconds(), time.monotonic()
        totals = importer.run(stop=functools.partial(past, start + seconds / ROUNDS))
        elapsed += time.monotonic() - start
        events += totals.events
        per_event.append((cpu_seconds() - cpu) / max(totals.events, 1))
    out = {"events": events, "seconds": elapsed, "cpu": min(per_event) * events}
    print(json.dumps(out | {"floor": min(floors)}))


def floor_per_million(runs: int = 5) -> float:
    """CPU-s per 1M events of the floor: the GetRecords body's loads, base64, record loads,
    event dumps (orjson, hand-written for these settings, the stub's own 500-record page).

    The best of ``runs`` windows of 0.2 s.
    """
    import hashlib  # noqa: PLC0415

    import orjson  # noqa: PLC0415

    sys.path.insert(0, str(HERE))
    from _stub_kinesis import Stub  # noqa: PLC0415

    stub = Stub(1, 500, 0.0)
    body = json.dumps(stub.answer("GetRecords", {"ShardIterator": stub.shard_ids[0]})).encode()

    def floor() -> int:
        page = orjson.loads(body)
        for record in page["Records"]:
            payload = orjson.loads(base64.b64decode(record["Data"]))
            properties = payload["properties"]
            digest = hashlib.sha1(b"s/shardId-000000000000/" + record["SequenceNumber"].encode())  # noqa: S324
            arrival = datetime.fromtimestamp(record["ApproximateArrivalTimestamp"], timezone.utc)
            orjson.dumps(
                {
                    "event": properties["eventName"],
                    "distinct_id": properties["userId"],
                    "properties": {
                        "plan": properties["plan"],
                        "path": payload["context"]["page"]["path"],
                    },
                    "timestamp": arrival,
                    "uuid": digest.hexdigest()[:32],
                }
            )
        return len(page["Records"])

    windows = []
    for _ in range(runs):
        start, count = time.process_time(), 0
        while time.process_time() - start < 0.2:
            count += floor()
        windows.append((time.process_time() - start) / count)
    return min(windows) * 1e6


def end_to_end(seconds: float) -> None:
    """Section 1: events per second at 0, 50 and 150 ms, each in a fresh interpreter."""
    kinesis = StandIn("_stub_kinesis.py", "--shards", 32, "--records", 500, "--latency", 0.04)
    print("1. end to end: 32 shards x 500 records a call at 40 ms -> PostHogSink, defaults")
    rates: dict[float, float] = {}
    cpu: dict[str, float] = {}
    floors: dict[str, float] = {}
    try:
        for client_kind, latency in (
            ("ours", 0.0),
            ("ours", 0.05),
            ("ours", 0.15),
            ("injected", 0.0),
        ):
            posthog = StandIn("_stub_posthog.py", "--latency", latency)
            try:
                kinesis.get("/_reset")
                command = [sys.executable, __file__, "--importer-child", kinesis.url]
                command += [posthog.url, "--seconds", str(seconds), "--client", client_kind]
                out = subprocess.run(command, capture_output=True, text=True, env=ENV, check=False)
                if out.returncode:
                    sys.exit(f"the importer failed:\n{out.stderr[-3000:]}")
                child = json.loads(out.stdout.strip().splitlines()[-1])
                stats = posthog.get("/_stats")
            finally:
                posthog.close()
            rate = stats["unique"] / child["seconds"]
            per_million = child["cpu"] / max(child["events"], 1) * 1e6
            if client_kind == "ours":
                rates[latency] = rate
            cpu.setdefault(client_kind, per_million)
            floors.setdefault(client_kind, child["floor"])
            what = "client built" if client_kind == "ours" else "boto3.client"
            print(
                f"   {what}, PostHog at {latency * 1000:>3.0f} ms: {rate:>9,.0f} events/s "
                f"({stats['unique']:,} distinct of {stats['events']:,} received, "
                f"{stats['requests']:,} requests, at most {stats['most_at_once']} at once); "
                f"{per_million:.1f} CPU-s per 1M events"
            )
    finally:
        kinesis.close()
    for latency, target in ((0.05, 0.9), (0.15, 0.8)):
        ratio = rates[latency] / rates[0.0]
        print(f"   ratio at {latency * 1000:.0f} ms / 0 ms: {ratio:.2f} (target >= {target})")
    ours, theirs = cpu["ours"] / floors["ours"], cpu["injected"] / floors["injected"]
    print(
        f"   CPU per 1M events at 0 ms: {cpu['ours']:.1f} s (client built), "
        f"{cpu['injected']:.1f} s (boto3.client), each the best of {ROUNDS} rounds; the floor, "
        f"measured by each process between its rounds, {floors['ours']:.1f} s and "
        f"{floors['injected']:.1f} s: {ours:.2f}x and "
        f"{theirs:.2f}x (target <= 4)"
    )


def lambda_event(count: int) -> dict[str, Any]:
    """A Kinesis event of ``count`` realistic records, as an event source mapping sends it."""
    sys.path.insert(0, str(HERE))
    from _stub_kinesis import record_data  # noqa: PLC0415

    data = record_data()
    arn = "arn:aws:kinesis:us-east-1:123456789012:stream/s"
    return {
        "Records": [
            {
                "kinesis": {
                    "partitionKey": "k",
                    "sequenceNumber": str(10**20 + n),
                    "data": data,
                    "approximateArrivalTimestamp": 1.7e9,
                },
                "eventID": f"shardId-000000000000:{10**20 + n}",
                "eventSourceARN": arn,
            }
            for n in range(count)
        ]
    }


def best_time(work: Any, runs: int) -> float:
    """The fastest of ``runs`` runs of ``work()``, in seconds."""
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - start)
    return best


def lambda_invocation(runs: int) -> None:
    """Section 2: a 10,000-record invocation at 50 ms against one request of the same."""
    from streambridge import ImporterSettings, PostHogSink, make_handler  # noqa: PLC0415

    settings = ImporterSettings(
        stream_name="s", event_key=EVENT_KEY, additional_property_mappings=MAPPINGS
    )
    event = lambda_event(10_000)
    posthog = StandIn("_stub_posthog.py", "--latency", 0.05)
    try:
        ours = make_handler(settings, PostHogSink(api_key="phc_bench", host=posthog.url))
        single = PostHogSink(
            api_key="phc_bench", host=posthog.url, concurrency=1, max_request_bytes=2**30
        )
        one = make_handler(settings, single, records_per_sink_call=10_000)
        for handler in (ours, one):  # warm: connections, converters
            assert handler(event, None) == {"batchItemFailures": []}
        posthog.get("/_reset")
        baseline = best_time(lambda: one(event, None), runs)
        one_request = posthog.get("/_stats")["requests"]
        posthog.get("/_reset")
        mine = best_time(lambda: ours(event, None), runs)
        requests = posthog.get("/_stats")["requests"]
    finally:
        posthog.close()
    print("2. Lambda: a 10,000-record invocation, PostHog at 50 ms")
    print(
        f"   the same records in one request: {baseline * 1000:6.0f} ms "
        f"({one_request // runs} request a run)"
    )
    print(
        f"   make_handler(settings, PostHogSink(...)): {mine * 1000:6.0f} ms "
        f"({requests // runs} requests a run); ratio {mine / baseline:.2f} (target <= 1.5)"
    )


def varied_events(count: int) -> list[Any]:
    """``count`` events converted from ``bench/importer.py``'s varied records."""
    from datetime import datetime, timezone  # noqa: PLC0415

    from streambridge import ImporterSettings, RecordConverter  # noqa: PLC0415

    sys.path.insert(0, str(HERE))
    from importer import realistic_records  # noqa: PLC0415 - varied records, as gzip meets them

    settings = ImporterSettings(
        stream_name="s", event_key=EVENT_KEY, additional_property_mappings=MAPPINGS
    )
    arrival = datetime(2024, 5, 1, tzinfo=timezone.utc)
    records = [
        {"Data": data, "SequenceNumber": str(10**20 + n), "ApproximateArrivalTimestamp": arrival}
        for n, data in enumerate(realistic_records(count))
    ]
    events, _ = RecordConverter(settings).convert("shardId-000000000000", records)
    return events


def request_building(runs: int) -> None:
    """Section 3: CPU per event building and sending requests, ours by gzip level vs posthog's."""
    from streambridge import PostHogSink  # noqa: PLC0415
    from streambridge._json import encode_record  # noqa: PLC0415

    events = varied_events(10_000)
    posthog = StandIn("_stub_posthog.py", "--latency", 0)
    rows: list[tuple[str, float, float]] = []

    def measure(name: str, send: Any) -> None:
        best = float("inf")
        posthog.get("/_reset")
        for _ in range(runs):
            for event in events:  # forget the converter's encoding: each run encodes once
                object.__setattr__(event, "_encoded", None)
            start = time.thread_time()
            send()
            best = min(best, time.thread_time() - start)
        sent = posthog.get("/_stats")
        rows.append((name, best / len(events) * 1e6, sent["bytes"] / sent["events"]))

    try:
        batch_post: Any
        try:
            from posthog.request import batch_post  # noqa: PLC0415
        except ImportError:
            batch_post = None
        if batch_post is not None:

            def theirs() -> None:  # the sink until 0.2: checks, then posthog-python
                chunk: list[Any] = []
                size = 0
                for event in events:
                    body = event.capture_json()
                    length = len(encode_record(body))  # its size check
                    encode_record(event.capture_json())  # the strictness check in to_event
                    if chunk and size + length + 1 > 5 * 1024 * 1024:
                        batch_post("phc_bench", posthog.url, gzip=True, batch=chunk)
                        chunk, size = [], 0
                    chunk.append(body)
                    size += length + 1
                batch_post("phc_bench", posthog.url, gzip=True, batch=chunk)

            measure("posthog-python batch_post (gzip 9), as until 0.2", theirs)
        for level in (1, 6, 9):
            sink = PostHogSink(
                api_key="phc_bench", host=posthog.url, gzip_level=level, concurrency=1
            )
            measure(f"PostHogSink, gzip level {level}", lambda sink=sink: sink(events))
        plain = PostHogSink(api_key="phc_bench", host=posthog.url, gzip=False, concurrency=1)
        measure("PostHogSink, no gzip", lambda: plain(events))
    finally:
        posthog.close()
    print(f"3. building and sending {len(events):,} events (this thread's CPU, best of {runs})")
    base = rows[0][1]
    for name, micros, size in rows:
        ratio = micros / base
        print(f"   {name:<48} {micros:6.1f} us/event  {size:6.0f} bytes/event  {ratio:.2f}x")


def main() -> None:
    """Run the benchmarks."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--importer-child", nargs=2, metavar=("KINESIS", "POSTHOG"))
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--client", choices=("ours", "injected"), default="ours")
    parser.add_argument("--only", choices=("e2e", "lambda", "requests"))
    args = parser.parse_args()
    if args.importer_child:
        kinesis, posthog = args.importer_child
        importer_child(kinesis, posthog, args.seconds, args.client)
        return
    if args.only in (None, "requests"):
        request_building(runs=2 if args.quick else 5)
    if args.only in (None, "lambda"):
        lambda_invocation(runs=2 if args.quick else 5)
    if args.only in (None, "e2e"):
        end_to_end(seconds=5.0 if args.quick else args.seconds)


if __name__ == "__main__":
    main()
