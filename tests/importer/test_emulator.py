"""KinesisImporter against kinesalite, where moto is wrong: resharding and iterator expiry."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import attrs
import boto3
import pytest
from botocore.config import Config

from streambridge import ImporterSettings, KinesisImporter, PostHogEvent
from streambridge.testing import ErrorFault, FaultInjector

pytestmark = pytest.mark.emulator

SETTINGS = ImporterSettings(
    stream_name="reshard",
    event_key="name",
    additional_property_mappings="n:n,key:key",
    start_position="TRIM_HORIZON",
    min_call_interval=0.05,
    idle_poll_interval=0.1,
)


@pytest.fixture(name="kinesis")
def _kinesis(kinesalite: str) -> Iterator[Any]:
    client = boto3.client(
        "kinesis",
        region_name="us-east-1",
        endpoint_url=kinesalite,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"mode": "standard", "total_max_attempts": 1}),
    )
    yield client
    for name in client.list_streams()["StreamNames"]:
        client.delete_stream(StreamName=name)


def wait_active(kinesis: Any, stream: str) -> None:
    """Wait until the stream is ACTIVE again after a reshard."""
    for _ in range(200):
        status = kinesis.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]
        if status["StreamStatus"] == "ACTIVE":
            return
        time.sleep(0.05)
    pytest.fail("stream did not become ACTIVE")


def open_shards(kinesis: Any, stream: str) -> list[dict[str, Any]]:
    """The shards that take writes."""
    shards = kinesis.list_shards(StreamName=stream)["Shards"]
    return [s for s in shards if "EndingSequenceNumber" not in s["SequenceNumberRange"]]


class Producer(threading.Thread):
    """Puts numbered records on 8 partition keys until stopped; remembers what was acknowledged."""

    def __init__(self, kinesis: Any, stream: str) -> None:
        """Produce to `stream`."""
        super().__init__(daemon=True)
        self.kinesis = kinesis
        self.stream = stream
        self.stop = threading.Event()
        self.acknowledged: list[int] = []

    def run(self) -> None:
        """Put records until stopped."""
        n = 0
        while not self.stop.is_set():
            data = json.dumps({"name": "tick", "n": n, "key": f"k{n % 8}"}).encode()
            try:
                self.kinesis.put_record(StreamName=self.stream, Data=data, PartitionKey=f"k{n % 8}")
            except Exception:  # noqa: BLE001 - the emulator may refuse while resharding: retry
                time.sleep(0.01)
                continue
            self.acknowledged.append(n)
            n += 1
            time.sleep(0.003)


def run_in_background(importer: KinesisImporter) -> tuple[threading.Thread, threading.Event]:
    """Run the importer in a thread until the returned event is set."""
    stop = threading.Event()
    thread = threading.Thread(target=importer.run, kwargs={"stop": stop}, daemon=True)
    thread.start()
    return thread, stop


def until(condition: Callable[[], bool], seconds: float = 20.0) -> None:
    """Wait for a condition, or fail."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail("timed out")
        time.sleep(0.05)


def test_split_and_merge_while_producing(kinesis: Any) -> None:
    """Every record is imported exactly once and, per key, in order: parents before children."""
    kinesis.create_stream(StreamName="reshard", ShardCount=2)
    wait_active(kinesis, "reshard")
    imported: list[PostHogEvent] = []
    lock = threading.Lock()

    def sink(events: Sequence[PostHogEvent]) -> None:
        with lock:
            imported.extend(events)

    importer = KinesisImporter(kinesis, SETTINGS, sink=sink, shard_refresh_interval=0.3)
    producer = Producer(kinesis, "reshard")
    producer.start()
    thread, stop = run_in_background(importer)
    try:
        until(lambda: len(producer.acknowledged) > 150)
        first = open_shards(kinesis, "reshard")[0]
        low, high = (int(x) for x in first["HashKeyRange"].values())
        kinesis.split_shard(
            StreamName="reshard",
            ShardToSplit=first["ShardId"],
            NewStartingHashKey=str((low + high) // 2),
        )
        wait_active(kinesis, "reshard")
        until(lambda: len(producer.acknowledged) > 300)
        children = sorted(
            (
                s
                for s in open_shards(kinesis, "reshard")
                if s.get("ParentShardId") == first["ShardId"]
            ),
            key=lambda s: int(s["HashKeyRange"]["StartingHashKey"]),
        )
        kinesis.merge_shards(
            StreamName="reshard",
            ShardToMerge=children[0]["ShardId"],
            AdjacentShardToMerge=children[1]["ShardId"],
        )
        wait_active(kinesis, "reshard")
        until(lambda: len(producer.acknowledged) > 450)
    finally:
        producer.stop.set()
        producer.join(timeout=10)
    expected = producer.acknowledged
    until(lambda: len(imported) >= len(expected), seconds=30)
    time.sleep(0.5)  # let any duplicate show itself
    stop.set()
    thread.join(timeout=10)

    counts = Counter(int(e.properties["n"]) for e in imported)
    assert set(expected) == set(counts)
    assert [] == [n for n, c in counts.items() if c > 1]  # exactly once
    by_key: dict[str, list[int]] = defaultdict(list)
    for event in imported:
        by_key[str(event.properties["key"])].append(int(event.properties["n"]))
    for key, ns in by_key.items():
        assert sorted(ns) == ns, f"key {key} out of order: a child was read before its parent"
    finished = {shard for shard, cp in importer.shards.items() if cp.finished}
    assert {first["ShardId"], children[0]["ShardId"], children[1]["ShardId"]} <= finished


def test_children_created_while_following_start_at_trim_horizon(kinesis: Any) -> None:
    """Under LATEST, a child born after we started is read from its beginning."""
    kinesis.create_stream(StreamName="reshard", ShardCount=1)
    wait_active(kinesis, "reshard")
    events: list[PostHogEvent] = []
    importer = KinesisImporter(
        kinesis,
        attrs.evolve(SETTINGS, start_position="LATEST"),
        sink=events.extend,
        shard_refresh_interval=0.0,
    )
    importer.poll()  # LATEST on the only shard
    parent = open_shards(kinesis, "reshard")[0]
    kinesis.split_shard(
        StreamName="reshard", ShardToSplit=parent["ShardId"], NewStartingHashKey=str(2**127)
    )
    wait_active(kinesis, "reshard")
    for n in range(20):  # all land in the children
        kinesis.put_record(
            StreamName="reshard",
            Data=json.dumps({"name": "x", "n": n}).encode(),
            PartitionKey=f"p{n}",
        )
    deadline = time.monotonic() + 10
    while len(events) < 20 and time.monotonic() < deadline:
        importer.poll()
        time.sleep(0.1)
    assert list(range(20)) == sorted(int(e.properties["n"]) for e in events)


def test_expired_iterator_on_the_emulator(kinesis: Any) -> None:
    """An ExpiredIteratorException (injected) is answered from the checkpoint: no loss, no dup."""
    kinesis.create_stream(StreamName="reshard", ShardCount=1)
    wait_active(kinesis, "reshard")
    for n in range(30):
        kinesis.put_record(
            StreamName="reshard", Data=json.dumps({"name": "x", "n": n}).encode(), PartitionKey="p"
        )
    events: list[PostHogEvent] = []
    importer = KinesisImporter(
        kinesis,
        attrs.evolve(SETTINGS, records_per_call=10),
        sink=events.extend,
    )
    with FaultInjector(kinesis, keep_requests=True) as faults:
        importer.poll()
        faults.add("GetRecords", ErrorFault(400, "ExpiredIteratorException", "Iterator expired"))
        for _ in range(10):
            time.sleep(0.06)
            importer.poll()
    assert list(range(30)) == sorted(int(e.properties["n"]) for e in events)
    renewal = [p for op, p in faults.requests if op == "GetShardIterator"][-1]
    assert "AFTER_SEQUENCE_NUMBER" == renewal["ShardIteratorType"]


@pytest.mark.slow
def test_real_iterator_expiry_after_five_minutes(kinesis: Any) -> None:
    """Opt-in (-m slow): a held iterator really expires on the emulator after 5 minutes."""
    kinesis.create_stream(StreamName="reshard", ShardCount=1)
    wait_active(kinesis, "reshard")
    events: list[PostHogEvent] = []
    importer = KinesisImporter(
        kinesis,
        SETTINGS,
        sink=events.extend,
    )
    kinesis.put_record(StreamName="reshard", Data=b'{"name":"x","n":0}', PartitionKey="p")
    importer.poll()
    kinesis.put_record(StreamName="reshard", Data=b'{"name":"x","n":1}', PartitionKey="p")
    time.sleep(310)
    result = importer.poll()
    assert 1 == result.expired_iterators
    importer.poll()
    assert [0, 1] == sorted(int(e.properties["n"]) for e in events)
