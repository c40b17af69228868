"""``streambridge forward --checkpoints``: resumable after any kill, none lost (issue 20, part 3).

Measured before: a SIGKILL of ``forward`` with calls in flight left thousands of events in
neither S3 nor the dead letters, and nothing said how far the input was delivered. With
``--checkpoints`` the position moves only past lines whose records were all delivered or
dead-lettered, and a rerun goes on from there.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from streambridge._aws import MAX_IN_FLIGHT
from streambridge.testing import LocalAWS
from tests.cli.test_cli import _env, jsonl, run  # noqa: F401 - the env fixture
from tests.cli.test_cli_reliability import command, finished, subprocess_env

pytestmark = pytest.mark.integration

STREAM = "resumed"
EVENTS = 6_000


def numbered(count: int, start: int = 0) -> list[dict[str, Any]]:
    """One-event batches, numbered from ``start``."""
    return [
        {"message_id": f"m{n}", "events": [{"event_type": "custom_event", "data": {"n": n}}]}
        for n in range(start, start + count)
    ]


def delivered(aws: LocalAWS) -> Counter[int]:
    """How often each numbered event is in S3."""
    return Counter(b["events"][0]["data"]["n"] for b in aws.delivered(STREAM))


def behind_at_kill(aws: LocalAWS, settled: int) -> None:
    """The checkpoint (the first ``settled`` events) never passes what Firehose has.

    It is behind it by at most the calls that were in flight (10 of 500 records).
    """
    have = set(delivered(aws))
    assert set(range(settled)) <= have
    assert len({n for n in have if n >= settled}) <= MAX_IN_FLIGHT * 500


def killed_runs(
    aws: LocalAWS, argv: list[str], state: Path, seed: int, settled: Callable[[Any], int]
) -> int:
    """Three runs of ``streambridge argv``, each SIGKILLed soon after it moved ``state``.

    After each kill, the events the checkpoint counts settled (``settled(its JSON)``) are
    checked against what Firehose has (:func:`behind_at_kill`). Returns the kills made.
    """
    rng = random.Random(seed)
    kills = 0
    for _ in range(3):
        process = subprocess.Popen(  # noqa: S603 - our own command, loopback only
            command(*argv),
            env=subprocess_env(aws),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        before = state.read_text() if state.exists() else ""
        deadline = time.monotonic() + 30
        while process.poll() is None and time.monotonic() < deadline:
            if state.exists() and state.read_text() != before:  # a new checkpoint
                time.sleep(rng.uniform(0.0, 0.3))
                process.send_signal(signal.SIGKILL)
                kills += 1
                break
            time.sleep(0.01)
        process.wait(30)
        behind_at_kill(aws, settled(json.loads(state.read_text())))
    return kills


def forward(input_file: Path, state: Path, *extra: str) -> list[str]:
    """The forward command line with checkpoints."""
    argv = ["forward", str(input_file), "--stream", STREAM, "--checkpoints", str(state)]
    return [*argv, "--quiet", *extra]


def test_kills_at_random_moments_lose_nothing_and_resend_little(
    aws: LocalAWS, tmp_path: Path
) -> None:
    """Three SIGKILLs once a checkpoint exists, then a run to the end: every event in S3.

    At each kill the checkpoint is behind what Firehose has, by at most the calls in flight;
    the checkpoint file is 0600.
    """
    aws.create_delivery_stream(STREAM)
    source = jsonl(tmp_path / "batches.jsonl", numbered(EVENTS))
    state = tmp_path / "state.json"
    kills = killed_runs(aws, forward(source, state), state, 20, lambda saved: saved["lines"])
    done = finished(aws, *forward(source, state))
    assert 0 == done.returncode, done.stderr
    got = delivered(aws)
    assert set(range(EVENTS)) == set(got)
    assert kills >= 1
    assert state.stat().st_mode & 0o777 == 0o600
    assert EVENTS == json.loads(state.read_text())["lines"]
    again = finished(aws, *forward(source, state))
    assert (0, got) == (again.returncode, delivered(aws))  # nothing left to send


def test_a_rerun_sends_only_what_was_appended(
    capsys: pytest.CaptureFixture[str], env: list[str], aws: LocalAWS, tmp_path: Path
) -> None:
    """Lines appended after a complete run are the only ones the next run sends."""
    aws.create_delivery_stream(STREAM)
    source = jsonl(tmp_path / "batches.jsonl", numbered(300))
    state = tmp_path / "state.json"
    assert 0 == run(capsys, *forward(source, state), *env)[0]
    with source.open("a", encoding="utf-8") as stream:
        stream.write("[1, 2]\n")  # no batch: reported, and the lines after it still go
        stream.writelines(json.dumps(b) + "\n" for b in numbered(50, start=300))
    code, _, err = run(capsys, *forward(source, state), *env)
    assert (1, True) == (code, "line 301" in err)
    assert Counter(range(350)) == delivered(aws)


def test_a_changed_input_or_another_input_is_refused(
    capsys: pytest.CaptureFixture[str], env: list[str], aws: LocalAWS, tmp_path: Path
) -> None:
    """A checkpoint never skips lines it did not settle: changed lines, another file: exit 2."""
    aws.create_delivery_stream(STREAM)
    source = jsonl(tmp_path / "batches.jsonl", numbered(100))
    state = tmp_path / "state.json"
    assert 0 == run(capsys, *forward(source, state), *env)[0]
    jsonl(source, numbered(100, start=1))
    code, _, err = run(capsys, *forward(source, state), *env)
    assert 2 == code
    assert "first 100 line(s) changed" in err
    other = jsonl(tmp_path / "other.jsonl", numbered(5))
    code, _, err = run(capsys, *forward(other, state), *env)
    assert (2, True) == (code, "is for" in err)
    state.write_text("{}", encoding="utf-8")
    assert 2 == run(capsys, *forward(source, state), *env)[0]
    assert Counter(range(100)) == delivered(aws)


def test_checkpoints_need_a_json_lines_file(
    capsys: pytest.CaptureFixture[str], env: list[str], aws: LocalAWS, tmp_path: Path
) -> None:
    """An array, stdin, --replay, Wait for Complete Batch: refused with the reason."""
    array = tmp_path / "array.json"
    array.write_text(json.dumps(numbered(3)), encoding="utf-8")
    state = tmp_path / "state.json"
    code, _, err = run(capsys, *forward(array, state), *env)
    assert (2, True) == (code, "not a JSON array" in err)
    code, _, err = run(
        capsys, "forward", "-", "--stream", STREAM, "--checkpoints", str(state), *env
    )
    assert (2, True) == (code, "needs an input file" in err)
    settings = tmp_path / "mparticle.json"
    settings.write_text(json.dumps({"Wait for Complete Batch": True}), encoding="utf-8")
    source = jsonl(tmp_path / "batches.jsonl", numbered(3))
    code, _, err = run(capsys, *forward(source, state), "--settings", str(settings), *env)
    assert (2, True) == (code, "Wait for Complete Batch" in err)
    assert not state.exists()
