"""A fleet of two KCL MultiLangDaemons running ``streambridge kcl`` (issue 21, part 2).

The real daemon (amazon-kclpy's jars, Java 17) twice, as two workers of one application:
Kinesis is kinesis-local (kinesis-mock for Node, from npm: it speaks the HTTP/2 the daemon's
Kinesis client needs, and it reshards as AWS does — a closed parent keeps its records, new
writes go to the children, the parent's last page names them in ``ChildShards``, which the
KCL requires at a shard's end; moto keeps writing to closed parents and kinesalite sends no
``ChildShards``); the leases are in moto's DynamoDB (under hypercorn, ``tests/h2moto.py``).

10,000 records (plain, NDJSON, KPL aggregates, poison) go in three parts: before the
workers start; after the worker that is not the leader is killed with SIGKILL (the other
must take its leases); after a shard is split. Afterwards every record's events are in the
workers' output with exactly the uuids ``KinesisImporter`` gives, every poison record is
dead-lettered with its reason, and every lease is checkpointed at its shard's end (a split
parent at ``SHARD_END``). The figures (records, events, duplicates, lost, time to take the
killed worker's leases) are printed: ``pytest tests/importer/test_kcl_fleet.py -s``.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aws_kinesis_agg.aggregator import RecordAggregator

from streambridge import ImporterSettings, KinesisImporter
from tests.importer.test_kcl_daemon import (  # _h2moto: the h2moto fixture, used by name
    KEYS,
    REGION,
    _client,
    _h2moto,  # noqa: F401
    _read,
    answering,
    free_port,
    unavailable,
)

pytestmark = pytest.mark.integration

STREAM = "fleet"
APPLICATION = "fleet-two"
KINESIS_LOCAL = Path(__file__).resolve().parents[2] / ".emulators/node_modules/kinesis-local"
#: What CI installs (.ci/run), and how to have it here.
INSTALL = "npm install --prefix .emulators kinesis-local@0.6.2"
#: Each event's name by uuid, as KinesisImporter made it (to say what is missing, if any).
NAMES: dict[str, str] = {}


@pytest.fixture(name="kinesis_local")
def _kinesis_local(tmp_path: Path) -> Iterator[str]:
    """kinesis-local on loopback ports of its own; its plain (HTTP/1.1 and h2c) endpoint."""
    node = shutil.which("node")
    if node is None or not (KINESIS_LOCAL / "main.js").exists():
        unavailable(f"the fleet test needs Node and kinesis-local: {INSTALL}")
    port = free_port()
    env = {
        **os.environ,
        "KINESIS_MOCK_PLAIN_PORT": str(port),
        "KINESIS_MOCK_TLS_PORT": str(free_port()),
        "CREATE_STREAM_DURATION": "0ms",
        "SPLIT_SHARD_DURATION": "0ms",
        "LOG_LEVEL": "WARN",
    }
    log = (tmp_path / "kinesis-local.log").open("w")
    server = subprocess.Popen(  # noqa: S603 - the npm package's own entry point, loopback only
        [node, "main.js"], cwd=KINESIS_LOCAL, env=env, stdout=log, stderr=subprocess.STDOUT
    )  # it reads server.json (its certificate) from its own folder
    endpoint = f"http://127.0.0.1:{port}"
    try:
        answering(endpoint, server, 60)
        yield endpoint
    finally:
        server.terminate()
        try:
            server.wait(5)
        except subprocess.TimeoutExpired:  # it does not always stop on SIGTERM
            server.kill()
            server.wait(5)
        log.close()


def payloads() -> list[tuple[bytes, str | None]]:
    """10,000 records: plain documents, NDJSON pairs, KPL aggregates of five, five poison.

    Each with its partition key when it needs one: an aggregate's user records share a key
    and the aggregate is put with it, as the KPL does (it aggregates per shard). The KCL drops
    a user record whose key hashes outside the shard it was read from (docs/kcl.md).
    """
    out: list[tuple[bytes, str | None]] = [
        (json.dumps({"name": "click", "n": n}).encode(), None) for n in range(8895)
    ]
    out += [
        (
            json.dumps({"name": "view", "n": n}).encode()
            + b"\n"
            + json.dumps({"name": "buy", "n": n}).encode(),
            None,
        )
        for n in range(8895, 9895)
    ]
    out += [
        (aggregate(f"agg{n}", [{"name": "kpl", "n": n, "user": u} for u in range(5)]), f"agg{n}")
        for n in range(9895, 9995)
    ]
    out += [(b"not json %d" % n, None) for n in range(5)]
    return out


def aggregate(key: str, documents: list[dict[str, Any]]) -> bytes:
    """One KPL-aggregated record of ``documents``, every user record under ``key``."""
    aggregator = RecordAggregator()
    for document in documents:
        aggregator.add_user_record(key, json.dumps(document).encode())
    _, _, packed = aggregator.clear_and_get().get_contents()
    return bytes(packed)


def put(client: Any, data: list[tuple[bytes, str | None]], first: int) -> None:
    """Put ``data``; a record without a key of its own gets ``k<n>`` (spread over the shards)."""
    for start in range(0, len(data), 500):
        batch = data[start : start + 500]
        answer = client.put_records(
            StreamName=STREAM,
            Records=[
                {"Data": d, "PartitionKey": key or f"k{first + start + i}"}
                for i, (d, key) in enumerate(batch)
            ],
        )
        assert 0 == answer["FailedRecordCount"]


def test_two_daemons_lose_nothing_when_one_is_killed_and_a_shard_splits(
    kinesis_local: str, h2moto: str, tmp_path: Path
) -> None:
    """Kill the worker that is not the leader, split a shard: every event, the same uuids."""
    kinesis = _client("kinesis", kinesis_local)
    kinesis.create_stream(StreamName=STREAM, ShardCount=4)
    kinesis.get_waiter("stream_exists").wait(StreamName=STREAM, WaiterConfig={"Delay": 1})
    data = payloads()
    parts = [data[:4000], data[4000:7000], data[7000:]]

    workers = {name: _start(name, kinesis_local, h2moto, tmp_path) for name in ("a", "b")}
    try:
        # both hold leases and write events; then the one that is not the leader dies
        _until(
            lambda: set(_owners(h2moto).values()) == {"a", "b"},
            90,
            "both workers own leases",
            lambda: _owners(h2moto),
        )
        put(kinesis, parts[0], 0)
        _until(lambda: all(_read(tmp_path / f"out-{w}.jsonl") for w in workers), 60, "output")
        leader = _leader(h2moto)
        victim = "b" if leader == "a" else "a"
        workers[victim].send_signal(signal.SIGKILL)
        workers[victim].wait(10)
        killed = time.monotonic()
        put(kinesis, parts[1], 4000)
        _until(
            lambda: set(_owners(h2moto).values()) == {leader},
            90,
            f"{leader} owns every lease",
            lambda: _owners(h2moto),
        )
        takeover = time.monotonic() - killed

        shard = kinesis.list_shards(StreamName=STREAM)["Shards"][0]
        low, high = (int(shard["HashKeyRange"][k]) for k in ("StartingHashKey", "EndingHashKey"))
        kinesis.split_shard(
            StreamName=STREAM,
            ShardToSplit=shard["ShardId"],
            NewStartingHashKey=str(low + high >> 1),
        )
        kinesis.get_waiter("stream_exists").wait(StreamName=STREAM, WaiterConfig={"Delay": 1})
        put(kinesis, parts[2], 7000)

        expected, poison, ends = _what_the_importer_reads(kinesis)
        assert (11_395, 5) == (len(expected), poison)
        assert "SHARD_END" == ends[shard["ShardId"]]  # the split parent, read to its end

        def done() -> bool:
            got = {json.loads(line)["uuid"] for line in _outputs(tmp_path, "out")}
            return (
                got >= expected
                and len(_outputs(tmp_path, "dead")) >= 5
                and (_checkpoints(h2moto) == ends)
            )

        def state() -> str:
            got = {json.loads(line)["uuid"] for line in _outputs(tmp_path, "out")}
            return (
                f"missing {Counter(NAMES[uuid] for uuid in expected - got)}, "
                f"{len(_outputs(tmp_path, 'dead'))} dead "
                f"letters; checkpoints {_checkpoints(h2moto)}, ends {ends}, "
                f"owners {_owners(h2moto)}"
            )

        _until(done, 120, "every event written and every lease checkpointed at its end", state)
    finally:
        for worker in workers.values():
            if worker.poll() is None:
                worker.terminate()
                worker.wait(30)
    lines = [json.loads(line)["uuid"] for line in _outputs(tmp_path, "out")]
    assert expected == set(lines)
    dead = [json.loads(line) for line in _outputs(tmp_path, "dead")]
    assert all("not JSON" in letter["reason"] for letter in dead), dead
    print(  # noqa: T201 - the figures docs/kcl.md quotes
        f"\nfleet: {len(data):,} records, {len(expected):,} events, {len(lines):,} written "
        f"({len(lines) - len(set(lines)):,} duplicates, {len(expected - set(lines))} lost); "
        f"worker {victim} killed, {leader} owned all its leases {takeover:.1f} s later"
    )


def _start(name: str, kinesis: str, dynamodb: str, tmp_path: Path) -> subprocess.Popen[bytes]:
    """One daemon, worker ``name``: its properties made by ``streambridge kcl-daemon``."""
    properties = tmp_path / f"kcl-{name}.properties"
    argv = ["--application-name", APPLICATION, "--properties", str(properties)]
    argv += ["--region", REGION]
    for key, value in {
        "workerId": name,
        "kinesisEndpoint": kinesis,
        "dynamoDBEndpoint": dynamodb,
        "metricsLevel": "NONE",
        "retrievalMode": "POLLING",
        "idleTimeBetweenReadsInMillis": "250",
        # the leader assigns leases every 2 x failoverTimeMillis, only to workers that have
        # reported (2 s after they start): its first run comes before any, its second after
        # both have (a worker waits for the other's shard sync, checking every 3 s)
        "failoverTimeMillis": "5000",
        "shardSyncIntervalMillis": "5000",
        "disableWorkerMetrics": "true",  # no EC2 metadata probe (169.254.169.254)
        "workerMetricsReporterFreqInMillis": "2000",
    }.items():
        argv += ["--set", f"{key}={value}"]
    child = ["--stream", STREAM, "--event-key", "name"]
    child += ["--output", str(tmp_path / f"out-{name}.jsonl")]
    child += ["--dead-letter", str(tmp_path / f"dead-{name}.jsonl")]
    made = subprocess.run(  # noqa: S603 - our own command
        [sys.executable, "-m", "streambridge", "kcl-daemon", *argv, "--", *child],
        capture_output=True, text=True, check=True, env={**os.environ, **KEYS},
    )  # fmt: skip
    env = {**os.environ, **KEYS, "AWS_REGION": REGION, "AWS_EC2_METADATA_DISABLED": "true"}
    env["CBOR_ENABLED"] = "false"  # JSON bodies, which is what moto and kinesis-local read best
    with (tmp_path / f"daemon-{name}.log").open("w") as log:  # the daemon keeps its own copy
        return subprocess.Popen(  # noqa: S603 - the command kcl-daemon printed
            shlex.split(made.stdout.strip()),
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
        )


def _until(condition: Any, seconds: float, what: str, state: Any = str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {seconds:.0f} s: {what} ({state()})")
        time.sleep(0.5)


def _outputs(tmp_path: Path, kind: str) -> list[str]:
    return [line for path in sorted(tmp_path.glob(f"{kind}-*.jsonl")) for line in _read(path)]


def _leases(endpoint: str) -> list[dict[str, Any]]:
    dynamodb = _client("dynamodb", endpoint)
    try:
        items: list[dict[str, Any]] = dynamodb.scan(TableName=APPLICATION)["Items"]
    except dynamodb.exceptions.ResourceNotFoundException:  # not made yet
        return []
    return [item for item in items if "entityType" not in item]  # leases only


def _owners(endpoint: str) -> dict[str, str]:
    return {
        item["leaseKey"]["S"]: item["leaseOwner"]["S"]
        for item in _leases(endpoint)
        if "leaseOwner" in item
    }


def _checkpoints(endpoint: str) -> dict[str, str]:
    return {item["leaseKey"]["S"]: item["checkpoint"]["S"] for item in _leases(endpoint)}


def _leader(endpoint: str) -> str:
    """The worker holding the leader lock (KCL 3.0-3.4: the ``-CoordinatorState`` table)."""
    item = _client("dynamodb", endpoint).get_item(
        TableName=f"{APPLICATION}-CoordinatorState", Key={"key": {"S": "Leader"}}
    )["Item"]
    return str(item["ownerName"]["S"])


def _what_the_importer_reads(client: Any) -> tuple[set[str], int, dict[str, str]]:
    """``KinesisImporter``'s uuids and skips for the whole stream, and each shard's end."""
    settings = ImporterSettings(stream_name=STREAM, event_key="name", start_position="TRIM_HORIZON")
    importer = KinesisImporter(client, settings)
    uuids: set[str] = set()
    skipped = 0
    for _ in range(30):
        result = importer.poll()
        uuids |= {event.uuid for event in result.events}
        NAMES.update({event.uuid: event.event for event in result.events})
        skipped += len(result.skipped)
    ends = {}
    for shard in client.list_shards(StreamName=STREAM)["Shards"]:
        closed = "EndingSequenceNumber" in shard["SequenceNumberRange"]
        checkpoint = importer.shards[shard["ShardId"]]
        ends[shard["ShardId"]] = "SHARD_END" if closed else str(checkpoint.sequence_number)
    return uuids, skipped, ends
