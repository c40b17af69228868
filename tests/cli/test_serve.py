"""``streambridge serve``, black box: a subprocess on 127.0.0.1, moto's Firehose behind it."""

from __future__ import annotations

import gzip
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from streambridge.testing import LocalAWS

pytestmark = pytest.mark.integration

SECRET = "Basic bXBhcnRpY2xlOnMzY3JldC12YWx1ZQ=="  # noqa: S105 - a test value
AUTH = "STREAMBRIDGE_AUTHORIZATION"
STREAM = "hook"
SAMPLES = Path(__file__).resolve().parents[2] / "src" / "streambridge" / "samples"


def free_port() -> int:
    """A port nothing listens on now (loopback)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Served:
    """A running ``streambridge serve``: its port, process and (after stop) its stderr."""

    def __init__(self, process: subprocess.Popen[str], port: int) -> None:
        """A started process listening on ``port``."""
        self.process = process
        self.port = port
        self.stderr = ""

    def request(
        self, method: str, body: bytes = b"", path: str = "/", **headers: str
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        """One request on a new connection: status, JSON body, headers."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            names = {k.replace("_", "-"): v for k, v in headers.items()}
            connection.request(method, path, body=body, headers=names)
            answer = connection.getresponse()
            data = answer.read()
            headers = dict(answer.getheaders())
            if "json" not in headers.get("content-type", ""):  # uvicorn's own 503: text
                return answer.status, {"text": data.decode()}, headers
            return answer.status, json.loads(data) if data else {}, headers
        finally:
            connection.close()

    def post(self, body: bytes, **headers: str) -> tuple[int, dict[str, Any], dict[str, str]]:
        """POST with the right Authorization (unless given)."""
        return self.request("POST", body, **{"Authorization": SECRET, **headers})

    def stop(self) -> int:
        """SIGTERM, then wait; the exit code."""
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=30)
        assert self.process.stderr is not None
        self.stderr = self.process.stderr.read()
        self.process.stderr.close()
        return code


@contextmanager
def serve(
    aws: LocalAWS,
    *args: str,
    env: dict[str, str | None] | None = None,
    settings: Path | None = None,
) -> Iterator[Served]:
    """``streambridge serve`` until the block ends (SIGTERM), ready when /healthz answers."""
    port = free_port()
    command = [sys.executable, "-m", "streambridge", "serve", "--port", str(port), *args]
    command += ["--settings", str(settings)] if settings else ["--stream", STREAM]
    environment = {**os.environ, **aws.environment(), AUTH: SECRET}
    for name, value in (env or {}).items():
        if value is None:
            environment.pop(name, None)
        else:
            environment[name] = value
    process = subprocess.Popen(  # noqa: S603 - our own command, loopback only
        command, env=environment, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
    )
    served = Served(process, port)
    deadline = time.monotonic() + 30
    while True:
        try:
            if served.request("GET", path="/healthz")[0] == 200:
                break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                assert process.stderr is not None
                with process.stderr:
                    pytest.fail(f"serve did not start: {process.stderr.read()}")
            time.sleep(0.05)
    try:
        yield served
    finally:
        if process.poll() is None:
            served.stop()
        if process.stderr is not None and not process.stderr.closed:
            served.stderr = process.stderr.read()
            process.stderr.close()


def sample(name: str = "ios_lifecycle_screens_custom_commerce.json") -> bytes:
    """A sample batch's bytes."""
    return (SAMPLES / name).read_bytes()


def test_serve_forwards_each_posted_batch_and_answers_after_firehose(aws: LocalAWS) -> None:
    """Every sample batch POSTed (one gzip) is in S3; answers 200; a graceful stop exits 0."""
    aws.create_delivery_stream(STREAM)
    names = sorted(p.name for p in SAMPLES.glob("*.json"))
    with serve(aws) as served:
        for name in names:
            status, body, _ = served.post(sample(name))
            assert (200, "ok") == (status, body["status"]), body
        status, _, _ = served.post(gzip.compress(sample()), Content_Encoding="gzip")
        assert 200 == status
        assert 0 == served.stop()
    delivered = aws.delivered(STREAM)
    ids = [json.loads(sample(n)).get("batch_id") for n in names]
    assert sorted([*ids, ids[names.index("ios_lifecycle_screens_custom_commerce.json")]]) == sorted(
        d.get("batch_id") for d in delivered
    )
    assert "stopped by SIGTERM" in served.stderr


def test_serve_refuses_wrong_headers_and_bad_bodies_and_says_no_secret(aws: LocalAWS) -> None:
    """401 / 400 / 413 / 405 black box; nothing forwarded; the secret in no answer or log."""
    aws.create_delivery_stream(STREAM)
    # (whitespace around a value is not part of it in HTTP: the server strips it, as it must)
    wrong = ["", SECRET.lower(), SECRET.upper(), SECRET[:-2], "Basic d3Jvbmc=", SECRET + "x"]
    with serve(aws, "--max-body-bytes", "100000") as served:
        assert 401 == served.request("POST", sample())[0]
        for given in wrong:
            status, body, _ = served.post(sample(), Authorization=given)
            assert 401 == status
            assert SECRET not in json.dumps(body)
        bomb = gzip.compress(b"[" + b" " * 20_000_000 + b"]")
        assert 413 == served.post(bomb, Content_Encoding="gzip")[0]
        assert 413 == served.post(b" " * 100_001)[0]
        assert 400 == served.post(b'{"events": 3}')[0]
        assert 400 == served.post(b"\xff\xfe{}")[0]
        assert 400 == served.post(b"[" * 5000)[0]
        status, _, headers = served.request("PUT", b"{}", Authorization=SECRET)
        assert (405, "POST") == (status, headers.get("allow"))
        assert 0 == served.stop()
    assert [] == aws.delivered(STREAM)
    assert SECRET not in served.stderr
    assert SECRET.split()[1] not in served.stderr


def test_a_slow_client_holds_no_worker(aws: LocalAWS) -> None:
    """One worker; a client sending its body a byte at a time; others are answered meanwhile.

    The slow one is answered 408 at --body-timeout, nothing forwarded for it.
    """
    aws.create_delivery_stream(STREAM)
    with serve(aws, "--workers", "1", "--body-timeout", "6") as served:
        slow = socket.create_connection(("127.0.0.1", served.port))
        body = sample()
        head = f"POST / HTTP/1.1\r\nHost: x\r\nAuthorization: {SECRET}\r\n"
        slow.sendall(f"{head}Content-Length: {len(body)}\r\n\r\n".encode())
        slow.sendall(body[:1])
        for _ in range(3):
            assert 200 == served.post(sample())[0]
        slow.settimeout(0.1)
        with pytest.raises(TimeoutError):  # not answered yet: the others went first
            slow.recv(1)
        slow.sendall(body[1:2])  # a byte at a time, too slow for the body timeout
        slow.settimeout(30)
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = slow.recv(4096)
            if not chunk:
                break
            answer += chunk
        slow.close()
        assert answer.startswith(b"HTTP/1.1 408")
    assert 3 == len(aws.delivered(STREAM))


def test_sigterm_lets_the_request_in_hand_finish(aws: LocalAWS) -> None:
    """A body half sent when SIGTERM comes: it is finished, forwarded, answered 200; exit 0."""
    aws.create_delivery_stream(STREAM)
    with serve(aws) as served:
        client = socket.create_connection(("127.0.0.1", served.port))
        body = sample()
        head = f"POST / HTTP/1.1\r\nHost: x\r\nAuthorization: {SECRET}\r\n"
        client.sendall(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body[:100])
        time.sleep(0.3)
        served.process.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        assert served.process.poll() is None  # still finishing the request in hand
        client.sendall(body[100:])
        client.settimeout(30)
        answer = b""
        while True:
            chunk = client.recv(65536)
            if not chunk:
                break
            answer += chunk
        client.close()
        assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
        assert 0 == served.process.wait(timeout=30)
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", served.port), timeout=2).close()
    assert [json.loads(body)["batch_id"]] == [d["batch_id"] for d in aws.delivered(STREAM)]


def test_many_clients_at_once_all_delivered(aws: LocalAWS) -> None:
    """20 threads POSTing 10 batches each: 200 every time, every batch in S3 once."""
    aws.create_delivery_stream(STREAM)
    template = json.loads(sample())
    statuses: list[int] = []

    def client(n: int) -> None:
        for k in range(10):
            batch = {**template, "batch_id": n * 100 + k}
            statuses.append(served.post(json.dumps(batch).encode())[0])

    with serve(aws, "--workers", "8") as served:
        threads = [threading.Thread(target=client, args=(n,)) for n in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert [200] * 200 == statuses
    assert sorted(n * 100 + k for n in range(20) for k in range(10)) == sorted(
        d["batch_id"] for d in aws.delivered(STREAM)
    )


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        ([], {"STREAMBRIDGE_AUTHORIZATION": ""}, "empty"),
        (["--no-auth"], {}, "--no-auth and an Authorization value"),
        (["--workers", "0"], {}, "--workers must be more than 0"),
    ],
)
def test_serve_refuses_to_start_without_a_usable_authorization(
    aws: LocalAWS, args: list[str], env: dict[str, str], message: str
) -> None:
    """Usage errors are one line and exit 2, before anything listens."""
    environment = {**os.environ, **aws.environment(), "STREAMBRIDGE_AUTHORIZATION": SECRET, **env}
    command = [sys.executable, "-m", "streambridge", "serve", "--stream", STREAM, *args]
    done = subprocess.run(  # noqa: S603 - our own command, loopback only
        command, env=environment, capture_output=True, text=True, timeout=60, check=False
    )
    assert 2 == done.returncode
    assert message in done.stderr


def test_serve_needs_an_authorization_unless_told_and_reads_it_from_a_file(
    aws: LocalAWS, tmp_path: Path
) -> None:
    """No value: refused; --authorization-file works; --no-auth warns."""
    environment = {**os.environ, **aws.environment()}
    environment.pop("STREAMBRIDGE_AUTHORIZATION", None)
    command = [sys.executable, "-m", "streambridge", "serve", "--stream", STREAM]
    done = subprocess.run(  # noqa: S603 - our own command, loopback only
        command, env=environment, capture_output=True, text=True, timeout=60, check=False
    )
    assert 2 == done.returncode
    assert "--no-auth" in done.stderr
    aws.create_delivery_stream(STREAM)
    secret_file = tmp_path / "authorization"
    secret_file.write_text("Basic ZmlsZQ==\n", encoding="utf-8")
    with serve(aws, "--authorization-file", str(secret_file), env={AUTH: None}) as served:
        assert 200 == served.post(sample(), Authorization="Basic ZmlsZQ==")[0]
        assert 401 == served.post(sample())[0]
    with serve(aws, "--no-auth", env={AUTH: None}) as served:
        assert 200 == served.request("POST", sample())[0]
        assert 0 == served.stop()
    assert "every request is accepted" in served.stderr
    assert 2 == len(aws.delivered(STREAM))


def test_firehose_refusing_for_good_is_502_and_kept_in_the_dead_letter(
    aws: LocalAWS, tmp_path: Path
) -> None:
    """An IAM user without firehose:PutRecord*: 502, the batch in the dead letter (0600).

    Black box, the policy enforced by the local AWS: nothing is lost when the answer is not 2xx.
    """
    aws.create_delivery_stream(STREAM)
    policy = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}],
    }
    user = aws.iam_user("no-firehose", policy)
    dead = tmp_path / "dead.jsonl"
    with (
        aws.enforcing_iam(),
        serve(aws, "--dead-letter", str(dead), env=dict(aws.environment(user))) as served,
    ):
        status, body, _ = served.post(sample())
        assert 0 == served.stop()
    assert (502, "written", 1) == (status, body["dead_letter"], body["undelivered"])
    assert "AccessDenied" in body["reason"]
    assert dead.stat().st_mode & 0o777 == 0o600
    kept = [json.loads(line) for line in dead.read_text(encoding="utf-8").splitlines()]
    assert [json.loads(sample())["batch_id"]] == [k["record"]["batch_id"] for k in kept]


def test_past_max_connections_new_requests_are_503(aws: LocalAWS) -> None:
    """Two connections held (bodies half sent) with --max-connections 2: the third gets 503."""
    aws.create_delivery_stream(STREAM)
    with serve(aws, "--max-connections", "2") as served:
        time.sleep(0.5)  # the health check's connection closed, and the server saw it close
        held = []
        try:
            for _ in range(2):
                connection = socket.create_connection(("127.0.0.1", served.port))
                connection.sendall(
                    f"POST / HTTP/1.1\r\nHost: x\r\nAuthorization: {SECRET}\r\n"
                    "Content-Length: 100\r\n\r\n{".encode()
                )
                held.append(connection)
                time.sleep(0.2)
            for connection in held:  # both taken: no answer yet (their bodies are coming)
                connection.settimeout(0.2)
                with pytest.raises(TimeoutError):
                    connection.recv(100)
            assert 503 == served.post(sample())[0]
        finally:
            for connection in held:
                connection.close()
        time.sleep(0.5)
        assert 200 == served.post(sample())[0]
    assert 1 == len(aws.delivered(STREAM))
