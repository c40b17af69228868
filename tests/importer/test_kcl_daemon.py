"""The KCL's own MultiLangDaemon running ``streambridge kcl`` on the local AWS (issue 21).

The daemon's Kinesis client speaks only HTTP/2, which moto's own server does not; moto's
WSGI application under hypercorn speaks both (``tests/h2moto.py``), so the real daemon — the
jars amazon-kclpy installs, Java 17 — reads a local stream, keeps its leases in moto's
DynamoDB, and runs our child per shard. Here a sink that fails for good (PostHog refuses the
key) stops the daemon with no checkpoint moved, and the daemon started again imports every
event with ``KinesisImporter``'s uuids; the fleet of two is ``test_kcl_fleet.py``. Where Java
or the jars are missing the tests skip, unless ``KCL_DAEMON_TESTS_REQUIRED`` is set (CI).
"""

from __future__ import annotations

import json
import os
import shlex
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import boto3
import pytest

from streambridge import ImporterSettings, KinesisImporter
from streambridge.testing import local_posthog
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
        unavailable(reason)
    port = free_port()
    log = (tmp_path / "h2moto.log").open("w")
    server = subprocess.Popen(  # noqa: S603 - our own helper, loopback only
        [sys.executable, str(Path(__file__).resolve().parents[1] / "h2moto.py"), str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        answering(endpoint, server, 30)
        yield endpoint
    finally:
        server.terminate()
        server.wait(15)
        log.close()


def answering(endpoint: str, server: subprocess.Popen[bytes], seconds: float) -> None:
    """Wait until Kinesis at ``endpoint`` answers (the error, if it does not in time)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            kinesis(endpoint).list_streams()
        except Exception:  # noqa: PERF203 - a few polls while it starts
            if time.monotonic() > deadline or server.poll() is not None:
                raise
            time.sleep(0.2)
        else:
            return


def unavailable(reason: str) -> NoReturn:
    """Skip: the daemon cannot run here; fail instead where it must (CI sets the variable)."""
    if os.environ.get("KCL_DAEMON_TESTS_REQUIRED"):
        pytest.fail(f"{reason}; KCL_DAEMON_TESTS_REQUIRED is set: the daemon must run here")
    pytest.skip(reason)


def kinesis(endpoint: str) -> Any:
    """A boto3 Kinesis client on the endpoint."""
    return _client("kinesis", endpoint)


def _client(service: str, endpoint: str) -> Any:
    session = boto3.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION
    )
    return session.client(service, endpoint_url=endpoint)  # type: ignore[call-overload]


def records() -> list[bytes]:
    """Plain documents, NDJSON records of two documents, and two that are no JSON."""
    out = [json.dumps({"name": "click", "n": n}).encode() for n in range(200)]
    out += [
        (json.dumps({"name": "view", "n": n}) + "\n" + json.dumps({"name": "buy", "n": n})).encode()
        for n in range(200, 240)
    ]
    out += [b"not json %d" % n for n in range(2)]
    return out


def test_a_sink_that_fails_for_good_stops_the_daemon_and_loses_nothing(
    h2moto: str, tmp_path: Path
) -> None:
    """A sink that fails for good: the daemon stops, and started again loses nothing.

    PostHog refuses the key: the child exits 4, the daemon stops, no checkpoint moves; started
    again with PostHog well, the daemon imports every event with KinesisImporter's uuids.
    """
    expected, ends = _a_stream(kinesis(h2moto))

    with local_posthog() as posthog:
        posthog.status = 401  # a key PostHog refuses: no retry can fix it
        command = _daemon_command(h2moto, posthog.url, tmp_path)
        log = tmp_path / "daemon.log"
        first = _run_daemon(command, tmp_path, log)
        try:
            status = first.wait(120)  # the daemon stops when its child exits
        finally:
            _stop(first)
        text = log.read_text()
        assert 0 != status, text[-3000:]
        assert "the sink cannot take events" in text, text[-3000:]
        assert SECRET not in text  # the key is in the child's environment, not on a line
        assert SECRET not in (tmp_path / "kcl.properties").read_text()
        assert [] == posthog.events
        assert set(_checkpoints(h2moto, "fleet-it").values()) <= {"TRIM_HORIZON"}

        posthog.status = 200
        # started again reading through a role, as a stream in another account is read
        # (docs/kcl.md, "Across accounts"); STS is moto's here, hence endpoint= for the test
        role = f"{ROLE}|streambridge-kcl|externalId={EXTERNAL_ID}|endpoint={h2moto}^{REGION}"
        command = _daemon_command(h2moto, posthog.url, tmp_path, {"AwsCredentialsProvider": role})
        second = _run_daemon(command, tmp_path, tmp_path / "daemon-again.log")
        try:
            deadline = time.monotonic() + 90
            got: set[str] = set()
            checkpoints: dict[str, str] = {}
            while time.monotonic() < deadline and (got != expected or checkpoints != ends):
                time.sleep(0.5)
                got = {event["uuid"] for event in list(posthog.events)}
                checkpoints = _checkpoints(h2moto, "fleet-it")
        finally:
            _stop(second)
    assert expected == got, (tmp_path / "daemon-again.log").read_text()[-3000:]
    assert ends == checkpoints  # every lease checkpointed at its shard's last record
    letters = [json.loads(line) for line in _read(tmp_path / "dead.jsonl")]
    assert all("not JSON" in letter["reason"] for letter in letters), letters
    assert 2 == len({letter["sequence_number"] for letter in letters})  # each run wrote them
    assumed = _moto_state(h2moto)["sts"]["AssumedRole"]
    assert {(ROLE.split("|")[1], EXTERNAL_ID)} == {
        (r["role_arn"], r["external_id"]) for r in assumed
    }


ROLE = "KclStsAssumeRoleCredentialsProvider|arn:aws:iam::123456789012:role/clicks-reader"
EXTERNAL_ID = "from-the-stream-owner"


def _moto_state(endpoint: str) -> dict[str, Any]:
    """What moto holds (its own API: /moto-api/data.json)."""
    with urllib.request.urlopen(f"{endpoint}/moto-api/data.json") as answer:  # noqa: S310 - loopback
        state: dict[str, Any] = json.loads(answer.read())
    return state


def _a_stream(client: Any) -> tuple[set[str], dict[str, str]]:
    """A 2-shard stream of :func:`records`: KinesisImporter's uuids, each shard's last record."""
    client.create_stream(StreamName=STREAM, ShardCount=2)
    client.get_waiter("stream_exists").wait(StreamName=STREAM)
    data = records()
    client.put_records(
        StreamName=STREAM,
        Records=[{"Data": d, "PartitionKey": f"k{i}"} for i, d in enumerate(data)],
    )
    settings = ImporterSettings(stream_name=STREAM, event_key="name", start_position="TRIM_HORIZON")
    expected = set()
    skipped = 0
    importer = KinesisImporter(client, settings)
    for _ in range(5):
        result = importer.poll()
        expected |= {event.uuid for event in result.events}
        skipped += len(result.skipped)
    assert (280, 2) == (len(expected), skipped)
    return expected, _last_sequences(client)


SECRET = "phc_never_on_a_command_line"  # noqa: S105 - a made-up key for the stand-in


def _daemon_command(
    endpoint: str, posthog: str, tmp_path: Path, more: dict[str, str] | None = None
) -> list[str]:
    """``streambridge kcl-daemon``'s command for one daemon on ``endpoint``, into PostHog."""
    properties = tmp_path / "kcl.properties"
    settings_argv = ["--application-name", "fleet-it", "--properties", str(properties)]
    settings_argv += ["--region", REGION]
    for key, value in {
        "kinesisEndpoint": endpoint,
        "dynamoDBEndpoint": endpoint,
        "metricsLevel": "NONE",
        "retrievalMode": "POLLING",
        "idleTimeBetweenReadsInMillis": "250",
        "failoverTimeMillis": "2000",
        "shardSyncIntervalMillis": "5000",
        "disableWorkerMetrics": "true",
        # restarted under the same id, the daemon is the leader again at once; under a new
        # one it waits ~2.5 min for the dead worker's leader lock to lapse (docs/kcl.md)
        "workerId": "solo",
        **(more or {}),
    }.items():
        settings_argv += ["--set", f"{key}={value}"]
    child = ["--stream", STREAM, "--event-key", "name", "--posthog-host", posthog]
    child += ["--dead-letter", str(tmp_path / "dead.jsonl"), "--sink-patience", "5"]
    made = subprocess.run(  # noqa: S603 - our own command
        [sys.executable, "-m", "streambridge", "kcl-daemon", *settings_argv, "--", *child],
        capture_output=True, text=True, check=True, env={**os.environ, **KEYS},
    )  # fmt: skip
    return shlex.split(made.stdout.strip())


def _run_daemon(command: list[str], tmp_path: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, **KEYS, "AWS_REGION": REGION, "AWS_EC2_METADATA_DISABLED": "true"}
    env["CBOR_ENABLED"] = "false"  # the SDK's Kinesis client speaks JSON then (moto has no CBOR)
    env["POSTHOG_API_KEY"] = SECRET  # the child inherits it
    with log.open("w") as out:
        return subprocess.Popen(  # noqa: S603 - the command kcl-daemon printed
            command, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path
        )


def _stop(daemon: subprocess.Popen[bytes]) -> None:
    if daemon.poll() is None:
        daemon.terminate()
        daemon.wait(30)


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
