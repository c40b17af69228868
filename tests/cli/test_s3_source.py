"""``streambridge forward s3://bucket/prefix/``: replays from mParticle's S3 files (issue 20, part 3).

mParticle's Amazon S3 integration writes JSON lines, one batch a line; users gzip some. The
command reads every object under the prefix in key order, and with ``--checkpoints`` a rerun
goes on after the last batch settled: none read twice, none skipped. Before this, ``forward``
read local files only (``s3://…`` was "cannot read").
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import json
import threading
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from streambridge.cli._s3source import S3Source
from streambridge.iam import s3_source_policy
from streambridge.testing import LocalAWS
from tests.cli.test_cli import _env, run  # noqa: F401 - the env fixture
from tests.cli.test_cli_reliability import finished
from tests.cli.test_resume import delivered, killed_runs, numbered

pytestmark = pytest.mark.integration

STREAM = "resumed"
BUCKET = "mparticle-exports"


def ndjson(batches: list[dict[str, Any]]) -> bytes:
    """The batches as JSON lines."""
    return b"".join(json.dumps(b).encode() + b"\n" for b in batches)


def put(aws: LocalAWS, key: str, body: bytes) -> None:
    """Write an object to the exports bucket."""
    aws.client("s3").put_object(Bucket=BUCKET, Key=key, Body=body)


@pytest.fixture(name="exports")
def _exports(aws: LocalAWS) -> LocalAWS:
    """The delivery stream, and an empty bucket of mParticle exports."""
    aws.create_delivery_stream(STREAM)
    aws.client("s3").create_bucket(Bucket=BUCKET)
    return aws


def test_every_object_in_key_order_plain_and_gzip(
    capsys: pytest.CaptureFixture[str], env: list[str], exports: LocalAWS
) -> None:
    """Plain, gzip and concatenated-gzip objects, a folder marker, another prefix: read right.

    A line that is no batch is reported with its object and line; the rest goes on.
    """
    put(exports, "exports/2026/12/01/b.json.gz", gzip.compress(ndjson(numbered(100, 100))))
    put(exports, "exports/2026/12/01/a.json", ndjson(numbered(100)))
    two = gzip.compress(ndjson(numbered(50, 200))) + gzip.compress(ndjson(numbered(50, 250)))
    put(exports, "exports/2026/12/02/c", two)  # no suffix: gzip by its magic bytes
    put(exports, "exports/2026/12/03/", b"")  # a console "folder"
    bad = ndjson(numbered(10, 300)).replace(b"\n", b"\nnot json\n", 1)
    put(exports, "exports/2026/12/03/d.json", bad.replace(b"\n", b"\r\n"))
    put(exports, "elsewhere/x.json", ndjson(numbered(5, 900)))
    code, out, err = run(capsys, "forward", f"s3://{BUCKET}/exports/", "--stream", STREAM, *env)
    assert 1 == code, err
    assert Counter(range(310)) == delivered(exports)
    assert f"s3://{BUCKET}/exports/2026/12/03/d.json line 2: not JSON" in err
    assert "sent 310 record(s)" in out
    assert "unreadable 1" in out


def test_objects_are_read_in_key_order(exports: LocalAWS) -> None:
    """Every object's lines in key order, whatever order the objects were written in."""
    for n, key in enumerate(["k/3", "k/1.gz", "k/2", "k/10"]):
        body = ndjson(numbered(2, n * 2))
        put(exports, key, gzip.compress(body) if key.endswith(".gz") else body)
    source = S3Source(exports.client("s3"), f"s3://{BUCKET}/k/")
    keys = [key for key, _, _ in source.listing()]
    assert ["k/1.gz", "k/10", "k/2", "k/3"] == keys
    lines = [
        json.loads(line)["events"][0]["data"]["n"]
        for key, etag, _ in source.listing()
        for line in source.lines(key, etag)
    ]
    assert [2, 3, 6, 7, 4, 5, 0, 1] == lines
    assert (4, "k/3") == (source.objects, source.key)


def test_a_broken_gzip_object_is_reported_and_the_next_ones_go(
    capsys: pytest.CaptureFixture[str], env: list[str], exports: LocalAWS, tmp_path: Path
) -> None:
    """A gzip object cut short: its whole lines go, the rest is a reasoned note, then on."""
    whole = gzip.compress(ndjson(numbered(200)))
    put(exports, "p/1.gz", whole[: len(whole) // 2])
    put(exports, "p/2.json", ndjson(numbered(10, 500)))
    letters = tmp_path / "dead.jsonl"
    code, _, err = run(
        capsys, "forward", f"s3://{BUCKET}/p/", "--stream", STREAM,
        "--dead-letter", str(letters), *env,
    )  # fmt: skip
    assert 1 == code
    assert "p/1.gz line" in err
    assert "gzip stream cut short" in err
    got = delivered(exports)
    assert set(range(500, 510)) <= set(got)
    read = set(got) - set(range(500, 510))
    assert read == set(range(len(read)))  # the whole lines before the cut, in order
    assert 0 < len(read) < 200


def test_checkpoints_resume_after_kills_with_none_lost(
    aws: LocalAWS, exports: LocalAWS, tmp_path: Path
) -> None:
    """SIGKILLs mid-run, then a run to the end: every event delivered; a rerun sends none.

    At each kill the checkpoint (objects and lines) is behind what Firehose has, by at most
    the calls in flight.
    """
    for n in range(8):
        body = ndjson(numbered(750, n * 750))
        if n % 2:
            put(exports, f"exports/{n:02}.json.gz", gzip.compress(body))
        else:
            put(exports, f"exports/{n:02}.json", body)
    state = tmp_path / "state.json"
    argv = [
        "forward", f"s3://{BUCKET}/exports/", "--stream", STREAM, "--checkpoints", str(state),
        "--quiet",
    ]  # fmt: skip
    kills = killed_runs(
        aws, argv, state, 7, lambda saved: saved["objects"] * 750 + saved.get("lines", 0)
    )
    done = finished(aws, *argv)
    assert 0 == done.returncode, done.stderr
    got = delivered(aws)
    assert set(range(6000)) == set(got)
    assert kills >= 1
    assert state.stat().st_mode & 0o777 == 0o600
    assert 8 == json.loads(state.read_text())["objects"]
    again = finished(aws, *argv)
    assert (0, got) == (again.returncode, delivered(aws))
    put(exports, "exports/09.json", ndjson(numbered(20, 6000)))  # a new export, after the others
    more = finished(aws, *argv)
    assert 0 == more.returncode, more.stderr
    assert Counter({**got, **dict.fromkeys(range(6000, 6020), 1)}) == delivered(aws)


def test_checkpoints_refuse_what_they_would_skip(
    capsys: pytest.CaptureFixture[str], env: list[str], exports: LocalAWS, tmp_path: Path
) -> None:
    """An object added among the settled ones, or the object read last changed: exit 2."""
    put(exports, "e/1.json", ndjson(numbered(30)))
    put(exports, "e/3.json", ndjson(numbered(30, 30)))
    state = tmp_path / "state.json"
    argv = ["forward", f"s3://{BUCKET}/e/", "--stream", STREAM, "--checkpoints", str(state)]
    assert 0 == run(capsys, *argv, *env)[0]
    put(exports, "e/2.json", ndjson(numbered(5, 100)))  # before the last one settled
    code, _, err = run(capsys, *argv, *env)
    assert (2, True) == (code, "changed (one added, removed or renamed" in err), err
    saved = json.loads(state.read_text())
    saved.update(objects=1, keys_sha256=_keys_hash(["e/1.json"]), key="e/2.json", lines=2)
    saved.update(etag='"another"', sha256="0" * 64)
    state.write_text(json.dumps(saved))
    code, _, err = run(capsys, *argv, *env)
    assert (2, True) == (code, "changed since --checkpoints" in err), err
    other = ["forward", f"s3://{BUCKET}/other/", "--stream", STREAM, "--checkpoints", str(state)]
    code, _, err = run(capsys, *other, *env)
    assert (2, True) == (code, "is for" in err)
    assert Counter(range(60)) == delivered(exports)


def _keys_hash(keys: list[str]) -> str:
    return hashlib.sha256(b"".join(k.encode() + b"\n" for k in keys)).hexdigest()


class _CuttingProxy(ThreadingHTTPServer):
    """A loopback HTTP proxy to the local AWS that cuts the first GET of ``path`` half way."""

    daemon_threads = True

    def __init__(self, upstream: str, path: str) -> None:
        super().__init__(("127.0.0.1", 0), _Relay)
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.path, self.cut = path, 0
        self.ranges: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Relay(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _CuttingProxy

    def log_message(self, *_: Any) -> None:
        pass

    def _relay(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        upstream = http.client.HTTPConnection(*self.server.upstream, timeout=30)
        headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
        upstream.request(self.command, self.path, body=body, headers=headers)
        answer = upstream.getresponse()
        data = answer.read()
        upstream.close()
        target = self.command == "GET" and self.path.split("?")[0].endswith(self.server.path)
        if target and self.headers.get("Range"):
            self.server.ranges.append(str(self.headers["Range"]))
        cut = target and self.server.cut == 0 and not self.headers.get("Range")
        self.send_response(answer.status)
        for key, value in answer.getheaders():
            if key.lower() not in ("connection", "transfer-encoding", "content-length"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close" if cut else "keep-alive")
        self.end_headers()
        if cut:
            self.server.cut += 1
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(data)

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _relay  # noqa: N815


@pytest.fixture(name="cutting")
def _cutting(exports: LocalAWS) -> Iterator[_CuttingProxy]:
    proxy = _CuttingProxy(exports.endpoint_url, "/big.json")
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    yield proxy
    proxy.shutdown()
    proxy.server_close()


def test_a_read_cut_short_goes_on_where_it_stopped(
    capsys: pytest.CaptureFixture[str],
    env: list[str],
    exports: LocalAWS,
    cutting: _CuttingProxy,
) -> None:
    """A 200 whose body stops half way (the connection closed): read on with a Range, once."""
    put(exports, "big.json", ndjson(numbered(3000)))
    proxied = [cutting.url if a == exports.endpoint_url else a for a in env]
    code, _, err = run(capsys, "forward", f"s3://{BUCKET}/big.json", "--stream", STREAM, *proxied)
    assert 0 == code, err
    assert 1 == cutting.cut
    assert 1 == len(cutting.ranges)
    assert cutting.ranges[0].startswith("bytes=")
    assert cutting.ranges[0] != "bytes=0-"
    assert Counter(range(3000)) == delivered(exports)


def test_the_documented_policy_is_enough_and_a_missing_grant_is_named(
    capsys: pytest.CaptureFixture[str],
    env: list[str],
    exports: LocalAWS,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Under IAM enforcement: s3_source_policy reads the prefix; without it, exit 3 naming it.

    moto authorizes ListObjectsV2 as the action ``s3:ListObjectsV2`` (AWS: ``s3:ListBucket``)
    and does not read the ``s3:prefix`` condition: the test adds the one and drops the other,
    and keeps the policy's resources (moto matches S3 resources).
    """
    put(exports, "exports/1.json", ndjson(numbered(20)))
    firehose = {"Effect": "Allow", "Action": ["firehose:PutRecordBatch"], "Resource": "*"}
    allowed = s3_source_policy(f"s3://{BUCKET}/exports/")
    listing = allowed["Statement"][0]
    assert {"StringLike": {"s3:prefix": ["exports/*"]}} == listing.pop("Condition")
    assert ["s3:ListBucket"] == listing["Action"]
    listing["Action"].append("s3:ListObjectsV2")  # moto's name for it
    allowed["Statement"].append(firehose)
    reader = exports.iam_user("reader", allowed)
    blind = exports.iam_user("blind", {"Version": "2012-10-17", "Statement": [firehose]})
    argv = ["forward", f"s3://{BUCKET}/exports/", "--stream", STREAM, *env]
    with exports.enforcing_iam():
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", blind.access_key_id)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", blind.secret_access_key)
        code, _, err = run(capsys, *argv)
        assert (3, True) == (code, "grant s3:ListBucket" in err), err
        assert blind.secret_access_key not in err
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", reader.access_key_id)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", reader.secret_access_key)
        code, _, err = run(capsys, *argv)
        assert 0 == code, err
    assert Counter(range(20)) == delivered(exports)


def test_a_checkpoint_at_the_start_of_an_object_reads_it_whole(
    capsys: pytest.CaptureFixture[str], env: list[str], exports: LocalAWS, tmp_path: Path
) -> None:
    """A position at line 0 of an object (nothing of it settled) skips nothing of it."""
    put(exports, "z/1.json", ndjson(numbered(10)))
    etag = exports.client("s3").head_object(Bucket=BUCKET, Key="z/1.json")["ETag"]
    state = tmp_path / "state.json"
    state.write_text(
        json.dumps(
            {
                "version": 1, "input": f"s3://{BUCKET}/z/", "objects": 0,
                "keys_sha256": _keys_hash([]), "key": "z/1.json", "etag": etag, "lines": 0,
                "sha256": hashlib.sha256().hexdigest(),
            }
        )
    )  # fmt: skip
    argv = ["forward", f"s3://{BUCKET}/z/", "--stream", STREAM, "--checkpoints", str(state)]
    code, _, err = run(capsys, *argv, *env)
    assert 0 == code, err
    assert Counter(range(10)) == delivered(exports)
