"""The KCL's own MultiLangDaemon running ``streambridge kcl`` on the local AWS (issue 21).

The daemon's Kinesis client speaks only HTTP/2, which moto's own server does not; moto's
WSGI application under hypercorn speaks both (``tests/h2moto.py``), so the real daemon — the
jars amazon-kclpy installs, Java 17 — reads a local stream, keeps its leases in moto's
DynamoDB, and runs our child per shard. The events it writes must be exactly those
``KinesisImporter`` gives for the same records (the same uuids), the poison records must be
skipped with a reason, and the lease table's checkpoints must reach each shard's last record.
"""

from __future__ import annotations

import json
import os
import shlex
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from streambridge import ImporterSettings, KinesisImporter
from tests.cli.test_kcl_daemon import daemon_ready

pytestmark = pytest.mark.integration

STREAM = "fleet"
REGION = "us-east-1"
KEYS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


def free_port() -> int:
    """A loopback port nobody listens on (now)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(name="h2moto")
def _h2moto(tmp_path: Path) -> Iterator[str]:
    """Moto under hypercorn (HTTP/1.1 and h2c) in a process of its own; its endpoint."""
    reason = daemon_ready()
    if reason is not None:
        pytest.skip(reason)
    port = free_port()
    log = (tmp_path / "h2moto.log").open("w")
    server = subprocess.Popen(  # noqa: S603 - our own helper, loopback only
        [sys.executable, str(Path(__file__).resolve().parents[1] / "h2moto.py"), str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                kinesis(endpoint).list_streams()
                break
            except Exception:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.2)
        yield endpoint
    finally:
        server.terminate()
        server.wait(15)
        log.close()


def kinesis(endpoint: str) -> Any:
    """A boto3 Kinesis client on the endpoint."""
    return _client("kinesis", endpoint)


def _client(service: str, endpoint: str) -> Any:
    session = boto3.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION
    )
    return session.client(service, endpoint_url=endpoint)  # type: ignore[call-overload]


def records() -> list[bytes]:
    """Plain documents, NDJSON records of two documents, and a few that are no JSON."""
    out = [json.dumps({"name": "click", "n": n}).encode() for n in range(300)]
    out += [
        (json.dumps({"name": "view", "n": n}) + "\n" + json.dumps({"name": "buy", "n": n})).encode()
        for n in range(300, 340)
    ]
    out += [b"not json %d" % n for n in range(5)]
    return out


def test_the_daemon_imports_every_record_with_the_importers_uuids(
    h2moto: str, tmp_path: Path
) -> None:
    """One daemon, 4 shards: every event once, the same uuids, poison skipped, checkpoints."""
    client = kinesis(h2moto)
    client.create_stream(StreamName=STREAM, ShardCount=4)
    client.get_waiter("stream_exists").wait(StreamName=STREAM)
    data = records()
    for start in range(0, len(data), 100):
        client.put_records(
            StreamName=STREAM,
            Records=[
                {"Data": d, "PartitionKey": f"k{start + i}"}
                for i, d in enumerate(data[start : start + 100])
            ],
        )
    settings = ImporterSettings(stream_name=STREAM, event_key="name", start_position="TRIM_HORIZON")
    expected = set()
    skipped = 0
    importer = KinesisImporter(client, settings)
    for _ in range(10):
        result = importer.poll()
        expected |= {event.uuid for event in result.events}
        skipped += len(result.skipped)
    assert (380, 5) == (len(expected), skipped)

    out, dead = tmp_path / "events.jsonl", tmp_path / "dead.jsonl"
    properties = tmp_path / "kcl.properties"
    settings_argv = ["--application-name", "fleet-it", "--properties", str(properties)]
    settings_argv += ["--region", REGION]
    for key, value in {
        "kinesisEndpoint": h2moto,
        "dynamoDBEndpoint": h2moto,
        "metricsLevel": "NONE",
        "retrievalMode": "POLLING",
        "idleTimeBetweenReadsInMillis": "250",
        "failoverTimeMillis": "2000",
        "shardSyncIntervalMillis": "5000",
    }.items():
        settings_argv += ["--set", f"{key}={value}"]
    child = ["--stream", STREAM, "--event-key", "name", "--output", str(out)]
    child += ["--dead-letter", str(dead)]
    made = subprocess.run(  # noqa: S603 - our own command
        [sys.executable, "-m", "streambridge", "kcl-daemon", *settings_argv, "--", *child],
        capture_output=True, text=True, check=True, env={**os.environ, **KEYS},
    )  # fmt: skip
    env = {**os.environ, **KEYS, "AWS_REGION": REGION, "AWS_EC2_METADATA_DISABLED": "true"}
    env["CBOR_ENABLED"] = "false"  # the SDK's Kinesis client speaks JSON then (moto has no CBOR)
    log = (tmp_path / "daemon.log").open("w")
    daemon = subprocess.Popen(  # noqa: S603 - the command kcl-daemon printed
        shlex.split(made.stdout.strip()),
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
    )
    try:
        deadline = time.monotonic() + 90
        got: set[str] = set()
        checkpoints: dict[str, str] = {}
        ends = _last_sequences(client)
        while time.monotonic() < deadline and (
            len(got) < len(expected) or _lines(dead) < 5 or checkpoints != ends
        ):
            time.sleep(0.5)
            got = {json.loads(line)["uuid"] for line in _read(out)}
            checkpoints = _checkpoints(h2moto, "fleet-it")
    finally:
        daemon.terminate()
        daemon.wait(30)
        log.close()
    assert expected == got, (tmp_path / "daemon.log").read_text()[-3000:]
    reasons = [json.loads(line)["reason"] for line in _read(dead)]
    assert 5 == len(reasons)
    assert all("not JSON" in reason for reason in reasons), reasons
    assert ends == checkpoints  # every lease checkpointed at its shard's last record


def _last_sequences(client: Any) -> dict[str, str]:
    """Each shard's last record's sequence number."""
    ends = {}
    for shard in client.list_shards(StreamName=STREAM)["Shards"]:
        iterator = client.get_shard_iterator(
            StreamName=STREAM, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        page = client.get_records(ShardIterator=iterator, Limit=10_000)
        if page["Records"]:
            ends[shard["ShardId"]] = page["Records"][-1]["SequenceNumber"]
    return ends


def _read(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def _lines(path: Path) -> int:
    return len(_read(path))


def _checkpoints(endpoint: str, table: str) -> dict[str, str]:
    """Each lease's checkpoint in the daemon's lease table."""
    dynamodb = _client("dynamodb", endpoint)
    try:
        items = dynamodb.scan(TableName=table)["Items"]
    except dynamodb.exceptions.ResourceNotFoundException:  # the daemon has not made it yet
        return {}
    return {item["leaseKey"]["S"]: item["checkpoint"]["S"] for item in items}
