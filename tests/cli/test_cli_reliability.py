"""The command when things go wrong: PostHog outages and refusals, signals, dead letters."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from streambridge import read_dead_letters
from streambridge.testing import LocalAWS, local_posthog
from tests.cli.test_cli import _env, jsonl, run  # noqa: F401 - the env fixture
from tests.conftest import load_checkpoints

pytestmark = pytest.mark.integration

SHARD = "shardId-000000000000"


def subprocess_env(aws: LocalAWS) -> dict[str, str]:
    """The environment of a `streambridge` subprocess on the local AWS."""
    return {**os.environ, **aws.environment()}


def command(*argv: str) -> list[str]:
    """The command line of a `streambridge` subprocess."""
    return [sys.executable, "-m", "streambridge", *argv]


IMPORT = ["import", "--stream", "clicks", "--event-key", "name", "--start", "TRIM_HORIZON"]


def finished(aws: LocalAWS, *argv: str) -> subprocess.CompletedProcess[str]:
    """Run `streambridge` in a subprocess on the local AWS, to its end (60 s at most)."""
    return subprocess.run(  # noqa: S603
        command(*argv),
        env=subprocess_env(aws),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def wait_for(condition: Any, timeout: float = 30.0) -> None:
    """Poll ``condition`` until true (the subprocess got that far)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_during_an_outage_loses_nothing(
    aws: LocalAWS, tmp_path: Path, signum: int
) -> None:
    """SIGTERM or SIGINT while PostHog is down: exit 1, the count said, no checkpoint moved.

    The next run, with PostHog back, delivers all 500.
    """
    aws.create_stream("clicks", shards=1)
    aws.put_records("clicks", [{"name": "click", "n": n} for n in range(500)])
    db = tmp_path / "state.db"
    with local_posthog() as posthog:
        posthog.status = 503
        ph = ["--posthog-host", posthog.url, "--posthog-key", "phc_k", "--checkpoints", str(db)]
        process = subprocess.Popen(  # noqa: S603
            command(*IMPORT, *ph, "--mappings", "n:n"),
            env=subprocess_env(aws),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        wait_for(lambda: posthog.requests >= 2)  # in the outage, retrying
        process.send_signal(signum)
        _, err = process.communicate(timeout=30)
        assert 1 == process.returncode, err
        assert "not delivered 500" in err
        assert "500 event(s) read were not delivered" in err
        assert "Traceback" not in err
        assert [] == posthog.events
        assert load_checkpoints(db, "clicks")[SHARD].sequence_number is None
        posthog.status = 200
        done = finished(aws, *IMPORT, *ph, "--mappings", "n:n", "--until-caught-up")
        assert 0 == done.returncode, done.stderr
        assert set(range(500)) == {e["properties"]["n"] for e in posthog.events}


def test_a_refused_key_exits_4_at_once(
    aws: LocalAWS, env: list[str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A 401 from PostHog: one line, exit 4, nothing checkpointed."""
    aws.create_stream("clicks", shards=1)
    aws.put_records("clicks", [{"name": "click"}] * 300)
    db = tmp_path / "state.db"
    with local_posthog() as posthog:
        posthog.status = 401
        code, _, err = run(
            capsys,
            *IMPORT,
            "--posthog-host",
            posthog.url,
            "--posthog-key",
            "phc_revoked",
            "--checkpoints",
            str(db),
            "--until-caught-up",
            *env,
        )
    assert 4 == code
    (line,) = [x for x in err.splitlines() if x.startswith("streambridge: error:")]
    assert "refused the project API key (HTTP 401)" in line
    assert "300 event(s) not delivered" in line
    assert "phc_revoked" not in err
    assert load_checkpoints(db, "clicks")[SHARD].sequence_number is None


def test_output_survives_a_lone_surrogate(aws: LocalAWS, tmp_path: Path) -> None:
    r"""A record holding "\ud800" is skipped (dead-lettered); the good ones are written."""
    aws.create_stream("clicks", shards=1)
    aws.put_records(
        "clicks",
        [b'{"name": "a", "v": 1}', b'{"name": "b", "v": "\\ud800"}', b'{"name": "c", "v": 3}'],
    )
    out = tmp_path / "events.jsonl"
    dead = tmp_path / "dead.jsonl"
    done = finished(  # a subprocess, so that a hang (as on the old code) times out
        aws,
        *IMPORT,
        "--mappings",
        "v:v",
        "--output",
        str(out),
        "--dead-letter",
        str(dead),
        "--until-caught-up",
    )
    assert 0 == done.returncode, done.stderr
    assert ["a", "c"] == [json.loads(line)["event"] for line in out.read_bytes().splitlines()]
    assert "skipped 1" in done.stderr
    (line,) = dead.read_bytes().splitlines()
    letter = json.loads(line.decode("utf-8"))  # strict UTF-8
    assert ("skipped", 0) == (letter["kind"], letter["position"])
    assert "lone surrogate" in letter["reason"]
    assert '{"name": "b", "v": "\\ud800"}' == letter["data"]


def test_forward_dead_letters_then_replay(
    aws: LocalAWS, env: list[str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Undelivered records go to --dead-letter; --replay sends them once the stream exists."""
    batches = [
        {"message_id": f"m{n}", "events": [{"event_type": "custom_event", "data": {"n": n}}]}
        for n in range(30)
    ]
    source = jsonl(tmp_path / "in.jsonl", batches)
    dead = tmp_path / "dead.jsonl"
    code, _, err = run(
        capsys, "forward", "--stream", "later", "--dead-letter", str(dead), *env, str(source)
    )
    assert 3 == code
    assert f"30 record(s) not delivered, written to {str(dead)!r}" in err
    letters = list(read_dead_letters(dead))
    assert 30 == len(letters)
    assert {"failed"} == {letter.kind for letter in letters}
    aws.create_delivery_stream("later")
    code, out, _ = run(capsys, "forward", "--stream", "later", "--replay", str(dead), *env)
    assert 0 == code
    assert "sent 30 record(s)" in out
    delivered = aws.delivered("later")
    assert set(range(30)) == {r["events"][0]["data"]["n"] for r in delivered}


def test_replay_refuses_importer_letters_and_garbage(
    env: list[str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Only forwarder dead letters can be replayed; a broken file is a usage error."""
    skipped = tmp_path / "skipped.jsonl"
    skipped.write_text('{"kind": "skipped", "data": "x", "reason": "r"}\n')
    code, _, err = run(capsys, "forward", "--stream", "s", "--replay", str(skipped), *env)
    assert (2, "only the forwarder's can be replayed") == (code, err.split("; ")[-1].strip())
    broken = tmp_path / "broken.jsonl"
    broken.write_text("not json\n")
    code, _, err = run(capsys, "forward", "--stream", "s", "--replay", str(broken), *env)
    assert 2 == code
    assert "line 1 is not a dead-letter line" in err
    code, _, err = run(
        capsys, "forward", "--stream", "s", "--replay", str(broken), *env, str(broken)
    )
    assert (2, True) == (code, "give no input file" in err)
    code, _, err = run(
        capsys,
        "forward",
        "--stream",
        "s",
        "--replay",
        str(broken),
        "--dead-letter",
        str(broken),
        *env,
    )
    assert (2, True) == (code, "must be another file" in err)


LINE = json.dumps({"events": [{"event_type": "custom_event", "data": {"n": 1}}]}) + "\n"


def catches_sigterm(pid: int) -> bool:
    """Whether the process has installed its SIGTERM handler (Linux: SigCgt in /proc)."""
    status = Path(f"/proc/{pid}/status").read_text(encoding="ascii")
    caught = next(line for line in status.splitlines() if line.startswith("SigCgt:"))
    return bool(int(caught.split()[1], 16) & (1 << (signal.SIGTERM - 1)))


def forwarding_from_a_pipe(aws: LocalAWS, lines: int, *options: str) -> subprocess.Popen[str]:
    """`streambridge forward` reading a pipe, having read ``lines`` batches, waiting for more."""
    aws.create_delivery_stream("events")
    process = subprocess.Popen(  # noqa: S603
        command("forward", "--stream", "events", *options),
        env=subprocess_env(aws),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdin is not None
    process.stdin.write(LINE * lines)
    process.stdin.flush()
    wait_for(lambda: catches_sigterm(process.pid))
    time.sleep(0.5)  # the batches in the pipe are read within milliseconds
    return process


def test_forward_stops_cleanly_on_sigterm(aws: LocalAWS) -> None:
    """SIGTERM while reading a pipe: the batches read are delivered, then exit 143.

    The pipe stays open and quiet: the signal alone ends the read (no line has to wake it).
    """
    process = forwarding_from_a_pipe(aws, 50)
    assert process.stdin is not None
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    finally:
        process.kill()
    process.stdin.close()
    assert process.stdout is not None
    assert process.stderr is not None
    out, err = process.stdout.read(), process.stderr.read()
    process.stdout.close()
    process.stderr.close()
    assert 143 == process.returncode, err
    assert "sent 50 record(s)" in out
    assert "stopped by SIGTERM before the end of the input" in err
    assert 50 == len(aws.delivered("events"))


def test_a_second_signal_ends_a_blocked_read_and_keeps_the_records(
    aws: LocalAWS, tmp_path: Path
) -> None:
    """Two SIGTERMs on a quiet pipe: the records built are delivered or dead-lettered.

    The first signal alone stops the read within half a second; a second one that comes
    while the first is being handled stops at once, and carries what it did not deliver.
    Either way, exit 143 and none of the 20 lost.
    """
    dead = tmp_path / "dead.jsonl"
    process = forwarding_from_a_pipe(aws, 20, "--dead-letter", str(dead))
    process.send_signal(signal.SIGTERM)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=30)
    assert 143 == process.returncode, err
    letters = len(list(read_dead_letters(dead)))
    assert letters + len(aws.delivered("events")) >= 20  # a record in flight may be both
    if "stopped by a second SIGTERM" in err:
        assert f"{letters} record(s) not delivered" in err
    else:
        assert "stopped by SIGTERM before the end of the input" in err
