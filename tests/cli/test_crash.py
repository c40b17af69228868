"""Crash and restart: SIGKILL at random points leaves no gap (issue 8).

An importer subprocess reads a local Kinesis stream with SQLite checkpoints and writes events
to a file that it fsyncs before it returns (so "the sink returned" means "on disk"). It is
killed at random moments, restarted, killed again, and finally left to catch up. Every record
must be in the file at least once; duplicates are allowed (at-least-once) and counted.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from streambridge.testing import LocalAWS

pytestmark = pytest.mark.integration

RECORDS = 3_000

IMPORTER = """
import sys
from streambridge import ImporterSettings, JsonLinesSink, KinesisImporter, SQLiteCheckpointStore
from streambridge._aws import build_client

db, out, endpoint = sys.argv[1:4]
client = build_client("kinesis", region="us-east-1", access_key_id="testing",
                      secret_access_key="testing", endpoint_url=endpoint)
settings = ImporterSettings(stream_name="crash", event_key="name", start_position="TRIM_HORIZON",
                            additional_property_mappings="n:n", records_per_call=25,
                            min_call_interval=0.0, idle_poll_interval=0.05)
with open(out, "a", encoding="utf-8") as stream:
    importer = KinesisImporter(client, settings, sink=JsonLinesSink(stream, fsync=True),
                               checkpoints=SQLiteCheckpointStore(db))
    importer.run(until_caught_up=True)
"""


def _lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def test_sigkill_at_random_points_leaves_no_gap(aws: LocalAWS, tmp_path: Path) -> None:
    """Six SIGKILLs at random moments, then a run to the end: every record arrived."""
    aws.create_stream("crash", shards=2)
    aws.put_records("crash", [{"name": "e", "n": n} for n in range(RECORDS)])
    db, out = tmp_path / "state.db", tmp_path / "events.jsonl"
    argv = [sys.executable, "-c", IMPORTER, str(db), str(out), aws.endpoint_url]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    rng = random.Random(8)
    kills = 0
    for _ in range(6):
        # kill once the file has grown by a random amount: mid-import, at a random point
        target = _lines(out) + rng.randint(20, 300)
        process = subprocess.Popen(argv, env=env, stderr=subprocess.PIPE)  # noqa: S603
        while process.poll() is None and _lines(out) < target:
            time.sleep(0.002)
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            kills += 1
        process.communicate(timeout=30)
    final = subprocess.run(argv, env=env, capture_output=True, timeout=120, check=False)  # noqa: S603
    assert 0 == final.returncode, final.stderr.decode()
    seen: Counter[int] = Counter()
    torn = 0
    for line in out.read_bytes().splitlines():
        try:
            seen[json.loads(line)["properties"]["n"]] += 1
        except ValueError:  # noqa: PERF203 - a line cut by SIGKILL (its events are read again)
            torn += 1
    gaps = RECORDS - len(seen)
    duplicates = sum(seen.values()) - len(seen)
    print(f"kills {kills}, gaps {gaps}, duplicates {duplicates}, torn lines {torn}")  # noqa: T201
    assert 0 == gaps
    assert set(range(RECORDS)) == set(seen)
    assert kills >= 3
