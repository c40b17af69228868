"""Importer benchmarks: ratios and rates measured in one run.

Run:  python bench/importer.py            (needs the `local` extra; `fast` for orjson)
      python bench/importer.py --quick    (smaller sizes, 10 s pacing window)

1. Decode + convert throughput on realistic records (nested event key, three mappings) against a
   bare ``json.loads`` of the same bytes.
2. ``GetRecords`` calls per second per shard over 30 s on a caught-up 2-shard stream (real time,
   real pacing, the local moto server).
3. End to end against the local moto server: records per second imported from a 4-shard stream
   with 100,000 records, with SQLite checkpoints.
5. Shards read at once (T3, T4 of issue 11), against an upstream that answers instantly
   (canned ``ListShards`` / ``GetShardIterator`` / ``GetRecords`` through botocore's parser, so
   no moto CPU in the loop) with 40 ms injected before each call: ``GetRecords`` per second
   for 32 shards with 500 records a call, against min(5 x shards, the same at 0 ms); and polls
   per shard per second of 32 caught-up shards.
6. Peak RSS importing 200k records against 20k from 32 canned shards into a sink (T5), each
   size in a fresh interpreter.
4. KPL de-aggregation: streambridge's hand-written decoder against protobuf's (upb) parser of
   the same messages (aws-kinesis-agg's ``messages_pb2``, building the same user records), and
   the conversion of aggregated records against the same user records sent plain.
"""

from __future__ import annotations

import argparse
import base64
import importlib
import json
import random
import tempfile
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from _timing import best_rate, in_child, offline_client

from streambridge import (
    ImporterSettings,
    KinesisImporter,
    RecordConverter,
    SQLiteCheckpointStore,
    _json,
)
from streambridge._json import HAS_ORJSON
from streambridge.testing import Fault, FaultInjector, Latency, LocalAWS, local_aws
from streambridge.testing.faults import json_response

EVENT_KEY = "properties.eventName"
MAPPINGS = "properties.userId:distinct_id,properties.plan:plan,context.page.path:path"


def realistic_records(count: int) -> list[bytes]:
    """PostHog-app-style records of about 450 bytes, varied."""
    rng = random.Random(7)
    names = ["Signed Up", "Viewed Page", "Added To Cart", "Checked Out", "Opened App"]
    out = []
    for n in range(count):
        record = {
            "properties": {
                "eventName": rng.choice(names),
                "userId": f"user-{rng.randrange(10_000)}",
                "plan": rng.choice(["free", "pro", "team"]),
                "amount": round(rng.random() * 100, 2),
                "items": [{"sku": f"SKU-{rng.randrange(999)}", "qty": rng.randrange(1, 4)}],
                "flags": {"beta": rng.random() < 0.5, "ab": rng.choice("ABC")},
            },
            "context": {
                "page": {"path": f"/p/{rng.randrange(500)}", "referrer": "https://example.com/"},
                "userAgent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36",
                "ip": "203.0.113.7",
            },
            "sentAt": "2024-05-01T12:00:00.000Z",
            "messageId": f"msg-{n:08d}",
        }
        out.append(json.dumps(record).encode())
    return out


def posthog_app_port(records: list[dict[str, Any]]) -> list[bytes]:
    """A faithful port of the PostHog app's per-record logic, with orjson; the events encoded.

    ``decodeBuffer`` (JSON.parse), ``getDeepValue`` for the event key and each mapping (own
    keys of truthy objects; only non-empty strings are mapped), then the plugin server's
    event: distinct_id and timestamp from the properties (else the plugin's name, now), a new
    uuid. The event is then encoded, as its capture would.
    """
    import uuid as uuid_module  # noqa: PLC0415

    import orjson  # noqa: PLC0415

    key = EVENT_KEY.split(".")
    mappings = [m.split(":") for m in MAPPINGS.split(",")]
    out = []
    for record in records:
        try:
            payload = orjson.loads(record["Data"])
        except orjson.JSONDecodeError:
            continue

        def deep(obj: Any, path: list[str]) -> Any:
            for segment in path:
                if not obj:
                    return None
                if isinstance(obj, dict):
                    if segment not in obj:
                        return None
                    obj = obj[segment]
                elif isinstance(obj, list | str) and segment.isdigit():
                    index = int(segment)
                    if index >= len(obj):
                        return None
                    obj = obj[index]
                else:
                    return None
            return obj

        event = deep(payload, key)
        if not event:
            continue
        properties = {}
        for source, target in mappings:
            value = deep(payload, source.split("."))
            if value and isinstance(value, str):
                properties[target] = value
        distinct_id = properties.pop("distinct_id", "AWS Kinesis")
        stamp = properties.pop("timestamp", None) or datetime.now(timezone.utc).isoformat()
        body = {
            "event": event,
            "distinct_id": distinct_id,
            "properties": properties,
            "timestamp": stamp,
            "uuid": str(uuid_module.uuid4()),
        }
        out.append(orjson.dumps(body))
    return out


def hand_written_floor(records: list[dict[str, Any]], stream: str, shard: str) -> list[bytes]:
    """The same events as ours for these settings, written by hand for them: the floor."""
    import hashlib  # noqa: PLC0415

    import orjson  # noqa: PLC0415

    namespace = _json_namespace()
    out = []
    for record in records:
        payload = orjson.loads(record["Data"])
        properties = payload["properties"]
        name = f"{stream}/{shard}/{record['SequenceNumber']}/0".encode()
        x = hashlib.sha1(namespace + name).digest()  # noqa: S324 - uuid5
        digest = bytearray(x[:16])
        digest[6] = (digest[6] & 0x0F) | 0x50
        digest[8] = (digest[8] & 0x3F) | 0x80
        h = digest.hex()
        body = {
            "event": properties["eventName"],
            "distinct_id": properties["userId"],
            "properties": {"plan": properties["plan"], "path": payload["context"]["page"]["path"]},
            "timestamp": record["ApproximateArrivalTimestamp"].isoformat(),
            "uuid": f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}",
        }
        out.append(orjson.dumps(body))
    return out


def _json_namespace() -> bytes:
    from streambridge.importer.events import UUID_NAMESPACE  # noqa: PLC0415

    return UUID_NAMESPACE.bytes


def bench_convert(seconds: float) -> None:
    """The importer's conversion (decode + events, encoded) vs a port of the app, a floor."""
    from streambridge.importer import events as events_module  # noqa: PLC0415

    records = realistic_records(2_000)
    arrival = datetime(2024, 5, 1, tzinfo=timezone.utc)
    converter = RecordConverter(
        ImporterSettings(
            stream_name="stream", event_key=EVENT_KEY, additional_property_mappings=MAPPINGS
        )
    )
    kinesis_records = [
        {"Data": data, "SequenceNumber": str(n), "ApproximateArrivalTimestamp": arrival}
        for n, data in enumerate(records)
    ]
    shard = "shardId-000000000000"
    ours_out = [e.capture_bytes() for e in converter.convert(shard, kinesis_records)[0]]
    assert ours_out == hand_written_floor(kinesis_records, "stream", shard)  # the same output

    def baseline() -> int:
        for data in records:
            json.loads(data)
        return len(records)

    def ours() -> int:
        events, skipped = converter.convert(shard, kinesis_records)
        assert len(events) == len(records)
        assert not skipped
        return len(records)

    def port() -> int:
        return len(posthog_app_port(kinesis_records))

    def floor() -> int:
        return len(hand_written_floor(kinesis_records, "stream", shard))

    rates: dict[str, list[float]] = {name: [] for name in ("base", "ours", "std", "port", "floor")}
    for _ in range(5):
        rates["base"].append(best_rate(baseline, seconds / 25))
        rates["ours"].append(best_rate(ours, seconds / 25))
        rates["port"].append(best_rate(port, seconds / 25))
        rates["floor"].append(best_rate(floor, seconds / 25))
        saved = _json._orjson, events_module.encode_record  # type: ignore[attr-defined]
        _json._orjson, events_module.encode_record = None, _json.encode_record_stdlib  # type: ignore[attr-defined]
        try:  # the path without the `fast` extra: decoding and encoding with the stdlib
            rates["std"].append(best_rate(ours, seconds / 25))
        finally:
            _json._orjson, events_module.encode_record = saved  # type: ignore[attr-defined]
    best = {name: max(values) for name, values in rates.items()}
    size = sum(map(len, records)) / len(records)
    print(f"1. decode + convert + encode, {len(records)} records of ~{size:.0f} bytes")
    print(f"   json.loads            {best['base']:>10,.0f} records/s")
    print(f"   PostHog app port      {best['port']:>10,.0f} records/s")
    print(f"   hand-written floor    {best['floor']:>10,.0f} records/s")
    if HAS_ORJSON:
        print(
            f"   ours, orjson          {best['ours']:>10,.0f} records/s   "
            f"{best['ours'] / best['base']:.2f} of json.loads (target >= 0.5), "
            f"{best['ours'] / best['port']:.2f} of the port (target >= 1.0), "
            f"{best['ours'] / best['floor']:.2f} of the floor (target >= 0.7)"
        )
    print(
        f"   ours, stdlib only     {best['std']:>10,.0f} records/s   "
        f"{best['std'] / best['base']:.2f} of json.loads (target >= 0.5)"
    )


def create_stream(aws: LocalAWS, name: str, shards: int) -> Any:
    """A stream on the local AWS and a client for it."""
    kinesis = aws.client("kinesis")
    kinesis.create_stream(StreamName=name, ShardCount=shards)
    return kinesis


def bench_pacing(seconds: float) -> None:
    """GetRecords per second per shard on a caught-up stream, in real time."""
    with local_aws() as aws:
        kinesis = create_stream(aws, "pacing", 2)
        aws.put_records("pacing", realistic_records(10))
        settings = ImporterSettings(
            stream_name="pacing",
            event_key=EVENT_KEY,
            additional_property_mappings=MAPPINGS,
            start_position="TRIM_HORIZON",
        )
        importer = KinesisImporter(kinesis, settings, sink=lambda _events: None)
        importer.run(until_caught_up=True)
        with FaultInjector(kinesis) as spy:
            deadline = time.monotonic() + seconds
            importer.run(stop=lambda: time.monotonic() >= deadline)
        rate = Counter(spy.calls)["GetRecords"] / 2 / seconds
        print(
            f"2. GetRecords per second per shard, caught up, over {seconds:.0f} s: {rate:.2f} "
            f"(target between 0.5 and 5)"
        )


def bench_end_to_end(count: int) -> None:
    """Import `count` records from 4 shards with SQLite checkpoints."""
    records = realistic_records(count)
    with local_aws() as aws, tempfile.TemporaryDirectory() as folder:
        kinesis = create_stream(aws, "e2e", 4)
        start = time.perf_counter()
        aws.put_records("e2e", records)
        put_seconds = time.perf_counter() - start
        settings = ImporterSettings(
            stream_name="e2e",
            event_key=EVENT_KEY,
            additional_property_mappings=MAPPINGS,
            start_position="TRIM_HORIZON",
        )
        accepted = [0]

        def sink(events: Any) -> None:
            accepted[0] += len(events)

        with SQLiteCheckpointStore(Path(folder) / "state.db") as store:
            importer = KinesisImporter(kinesis, settings, sink=sink, checkpoints=store)
            start = time.perf_counter()
            totals = importer.run(until_caught_up=True)
            seconds = time.perf_counter() - start
        assert accepted[0] == count == totals.events, (accepted, totals)
        print(
            f"3. end to end, 4 shards, {count:,} records, SQLite checkpoints: "
            f"{count / seconds:,.0f} records/s imported ({seconds:.1f} s, {totals.calls} "
            f"GetRecords calls; putting them took {put_seconds:.1f} s)"
        )


def bench_kpl(seconds: float) -> None:
    """De-aggregation: ours vs protobuf; conversion of aggregated vs plain records."""
    import hashlib  # noqa: PLC0415

    from aws_kinesis_agg.aggregator import RecordAggregator  # noqa: PLC0415 - sets its path

    messages_pb2: Any = importlib.import_module("aws_kinesis_agg.messages_pb2")  # after it

    from streambridge.importer.kpl import UserRecord, deaggregate  # noqa: PLC0415

    users = realistic_records(5_000)
    aggregated: list[bytes] = []
    for start in range(0, len(users), 100):
        aggregator = RecordAggregator()
        for n, data in enumerate(users[start : start + 100]):
            aggregator.add_user_record(f"pk-{start + n}", data)
        aggregated.append(bytes(aggregator.clear_and_get().get_contents()[2]))

    def ours() -> int:
        return sum(len(deaggregate(data)) for data in aggregated)

    def protobuf() -> int:
        count = 0
        for data in aggregated:
            body = data[4:-16]
            assert hashlib.md5(body).digest() == data[-16:]  # noqa: S324
            message = messages_pb2.AggregatedRecord.FromString(body)
            keys, hashes = message.partition_key_table, message.explicit_hash_key_table
            records = [
                UserRecord(
                    keys[r.partition_key_index],
                    hashes[r.explicit_hash_key_index]
                    if r.HasField("explicit_hash_key_index")
                    else None,
                    r.data,
                )
                for r in message.records
            ]
            count += len(records)
        return count

    converter = RecordConverter(
        ImporterSettings(
            stream_name="stream", event_key=EVENT_KEY, additional_property_mappings=MAPPINGS
        )
    )
    arrival = datetime(2024, 5, 1, tzinfo=timezone.utc)
    plain = [
        {"Data": d, "SequenceNumber": str(n), "ApproximateArrivalTimestamp": arrival}
        for n, d in enumerate(users)
    ]
    packed = [
        {"Data": d, "SequenceNumber": str(n), "ApproximateArrivalTimestamp": arrival}
        for n, d in enumerate(aggregated)
    ]

    def convert_plain() -> int:
        return len(converter.convert("shardId-000000000000", plain)[0])

    def convert_packed() -> int:
        return len(converter.convert("shardId-000000000000", packed)[0])

    mine: list[float] = []
    theirs: list[float] = []
    flat: list[float] = []
    agg: list[float] = []
    for _ in range(5):
        mine.append(best_rate(ours, seconds / 20))
        theirs.append(best_rate(protobuf, seconds / 20))
        flat.append(best_rate(convert_plain, seconds / 20))
        agg.append(best_rate(convert_packed, seconds / 20))
    print("4. KPL de-aggregation, 5,000 user records of ~408 bytes in 50 aggregated records")
    print(f"   protobuf (upb)  {max(theirs):>10,.0f} user records/s")
    ratio = max(mine) / max(theirs)
    print(f"   hand-written    {max(mine):>10,.0f} user records/s   ratio {ratio:.2f}")
    print(
        f"   conversion, aggregated / the same user records plain: "
        f"{max(agg):,.0f} / {max(flat):,.0f} user records/s, ratio {max(agg) / max(flat):.2f}"
    )


class _Canned(Fault):
    """A Kinesis that answers at once: 32 open shards, pages of ``records`` records."""

    def __init__(self, records: int, shards: int = 32) -> None:
        data = base64.b64encode(realistic_records(1)[0]).decode()
        self.records = [
            {"Data": data, "SequenceNumber": str(10**20 + n), "ApproximateArrivalTimestamp": 1.7e9}
            for n in range(records)
        ]
        self.shards = [
            {"ShardId": f"shardId-{n:012d}", "SequenceNumberRange": {"StartingSequenceNumber": "1"}}
            for n in range(shards)
        ]

    def respond(self, injector: Any, operation: str, request: Any) -> Any:
        if operation == "ListShards":
            return json_response(request, 200, {"Shards": self.shards})
        if operation == "GetShardIterator":
            return json_response(request, 200, {"ShardIterator": "it"})
        behind = 1000 if self.records else 0
        page = {"Records": self.records, "NextShardIterator": "it", "MillisBehindLatest": behind}
        return json_response(request, 200, page)


def _canned_importer(records: int, **options: Any) -> tuple[KinesisImporter, FaultInjector]:
    """An importer of 32 canned shards (pages of ``records``) into a null sink, and its spy."""
    client = offline_client("kinesis")
    canned = _Canned(records)
    settings = ImporterSettings(
        stream_name="s", event_key=EVENT_KEY, records_per_call=max(records, 1)
    )
    spy = FaultInjector(client)
    for operation in ("ListShards", "GetShardIterator", "GetRecords"):
        spy.always(operation, canned)
    options.setdefault("sink", lambda _events: None)
    return KinesisImporter(client, settings, **options), spy


def _calls_per_second(records: int, latency: float, seconds: float) -> float:
    importer, spy = _canned_importer(records)
    with spy, Latency(importer.client, latency):
        deadline = time.monotonic() + seconds
        importer.run(stop=lambda: time.monotonic() >= deadline)
    return Counter(spy.calls)["GetRecords"] / seconds


def bench_shards(seconds: float) -> None:
    """T3 and T4: GetRecords per second with shards read at once, at 40 ms a call."""
    print("5. 32 shards, an upstream that answers at once, 40 ms injected before each call")
    for name, records in (("T3 ", 500), ("", 10)):
        zero = _calls_per_second(records, 0.0, seconds)
        slow = _calls_per_second(records, 0.04, seconds)
        bound = min(5 * 32, zero)
        print(
            f"   {name}GetRecords/s, {records} records a call: {zero:,.1f} at 0 ms, {slow:,.1f} "
            f"at 40 ms: ratio to min(160, {zero:,.1f}) {slow / bound:.2f} (target >= 0.8)"
        )
    idle = _calls_per_second(0, 0.04, seconds) / 32
    print(f"   T4 polls per shard per second, caught up, at 40 ms: {idle:.2f} (target 0.9-1.1)")


def rss_child(records: int) -> None:
    """Runs in a subprocess: import `records` from 32 canned shards into a null sink; peak RSS."""

    class SlowSink:  # PostHog's 150 ms, 32 calls in flight: pages held while calls are out
        calls_in_flight = 32

        def __call__(self, events: Any) -> None:
            time.sleep(0.15)

    importer, spy = _canned_importer(500, sleep=lambda _: None, sink=SlowSink())
    with spy:
        totals = importer.run(max_events=records)
    print(json.dumps({"records": totals.records, "peak": peak_rss()}))


def peak_rss() -> int:
    """This process's peak resident set, in bytes: VmHWM, which exec starts afresh.

    (``ru_maxrss`` does not: a child exec'd from a large parent reports the parent's peak, and
    both sizes printed 445 MB in a full run.)
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    import resource  # noqa: PLC0415 - not Linux: the best there is

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def bench_rss(sizes: list[int]) -> None:
    """T5: peak RSS importing from 32 shards with a sink, for each size in a fresh interpreter."""
    print(
        "6. peak RSS importing from 32 canned shards into a sink answering in 150 ms, 32 calls "
        "in flight (each size in a subprocess)"
    )
    peaks = []
    for n in sizes:
        data = in_child(__file__, "--rss-child", n)
        peaks.append(data["peak"])
        print(f"   {data['records']:>9,} records: peak RSS {data['peak'] / 1e6:7.1f} MB")
    print(
        f"   T5 ratio {sizes[-1]:,} / {sizes[0]:,} records: {peaks[-1] / peaks[0]:.2f} "
        f"(target <= 1.2)"
    )


def main() -> None:
    """Run the benchmarks."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rss-child", type=int)
    parser.add_argument(
        "--only", nargs="+", choices=("convert", "pacing", "e2e", "kpl", "shards", "rss")
    )
    args = parser.parse_args()
    if args.rss_child is not None:
        rss_child(args.rss_child)
        return
    sections = {
        "convert": lambda: bench_convert(seconds=2.0 if args.quick else 10.0),
        "pacing": lambda: bench_pacing(10.0 if args.quick else 30.0),
        "e2e": lambda: bench_end_to_end(10_000 if args.quick else 100_000),
        "kpl": lambda: bench_kpl(seconds=2.0 if args.quick else 10.0),
        "shards": lambda: bench_shards(seconds=5.0 if args.quick else 15.0),
        "rss": lambda: bench_rss([20_000, 200_000]),
    }
    for name in args.only or sections:
        sections[name]()


if __name__ == "__main__":
    main()
