"""Issue 22, part 4: backfills that stop where you say (``run(until=)``, ``import --until``).

Each shard is read up to the first record that arrived after the instant and stops there, its
checkpoint on the last record at or before it; the run ends when every shard got there. The
records after the instant are not lost: the next run reads them from the checkpoints.
Through moto, whose arrival timestamps are its clock's (this machine's).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from streambridge import ImporterSettings, KinesisImporter, PostHogEvent
from streambridge.testing import LocalAWS

pytestmark = pytest.mark.integration


class Collect:
    """A thread-safe sink keeping each event's ``n``."""

    def __init__(self) -> None:
        """No events yet."""
        self.numbers: list[int] = []
        self._lock = threading.Lock()

    def __call__(self, events: Sequence[PostHogEvent]) -> None:
        """Keep the events' numbers."""
        with self._lock:
            self.numbers.extend(int(e.properties["n"]) for e in events)


def from_the_start(stream: str) -> ImporterSettings:
    """Settings that read ``stream`` from its first record, with each event's ``n``."""
    return ImporterSettings(
        stream_name=stream,
        event_key="name",
        additional_property_mappings="n:n",
        start_position="TRIM_HORIZON",
    )


def window(aws: LocalAWS, stream: str, shards: int, before: int, after: int) -> datetime:
    """Put ``before`` records, then the instant, then ``after`` records; the instant."""
    aws.create_stream(stream, shards=shards)
    aws.put_records(stream, [{"name": "early", "n": n} for n in range(before)])
    time.sleep(1.1)
    instant = datetime.now(timezone.utc)
    time.sleep(1.1)
    aws.put_records(stream, [{"name": "late", "n": before + n} for n in range(after)])
    return instant


@pytest.mark.parametrize("in_flight", [1, 4], ids=["one-call", "calls-in-flight"])
def test_a_run_until_an_instant_stops_there_and_the_next_goes_on(
    aws: LocalAWS, in_flight: int
) -> None:
    """Only the records before the instant; the next run reads the rest, none twice."""
    instant = window(aws, "clicks", shards=2, before=40, after=40)
    settings = from_the_start("clicks")
    sink = Collect()
    importer = KinesisImporter(
        aws.client("kinesis"), settings, sink=sink, sink_calls_in_flight=in_flight
    )
    totals = importer.run(until=instant, stop=_timeout(60))
    assert "until" == totals.stopped_because
    assert list(range(40)) == sorted(sink.numbers)
    assert (2, 2) == importer.window_progress()
    rest = importer.run(until_caught_up=True, stop=_timeout(60))
    assert "caught_up" == rest.stopped_because
    assert list(range(80)) == sorted(sink.numbers)  # the rest, and none of the first twice


@pytest.mark.parametrize("in_flight", [1, 4], ids=["one-call", "calls-in-flight"])
def test_a_window_page_the_sink_failed_is_read_again_in_the_same_run(
    aws: LocalAWS, in_flight: int
) -> None:
    """The page cut at the instant fails in the sink: the run reads it again, then ends."""
    instant = window(aws, "flaky", shards=1, before=10, after=5)
    settings = from_the_start("flaky")
    sink, failures = Collect(), [RuntimeError("PostHog is down")]

    def flaky(events: Sequence[PostHogEvent]) -> None:
        if failures:
            raise failures.pop()
        sink(events)

    importer = KinesisImporter(
        aws.client("kinesis"), settings, sink=flaky, sink_calls_in_flight=in_flight
    )
    totals = importer.run(until=instant, stop=_timeout(60))
    assert ("until", 0, 1) == (totals.stopped_because, totals.undelivered, totals.sink_failures)
    assert list(range(10)) == sorted(sink.numbers)


def test_a_shard_with_nothing_after_the_instant_ends_at_its_tip(aws: LocalAWS) -> None:
    """Read once the instant is past (an injected clock): the tip is the end of the window."""
    aws.create_stream("quiet", shards=1)
    aws.put_records("quiet", [{"name": "a", "n": n} for n in range(5)])
    instant = datetime.now(timezone.utc) + timedelta(seconds=1)
    later = instant + timedelta(minutes=10)
    sink = Collect()
    settings = from_the_start("quiet")
    importer = KinesisImporter(aws.client("kinesis"), settings, sink=sink, now=lambda: later)
    totals = importer.run(until=instant, stop=_timeout(60))
    assert ("until", [0, 1, 2, 3, 4]) == (totals.stopped_because, sorted(sink.numbers))
    future = KinesisImporter(aws.client("kinesis"), settings, sink=Collect())
    not_yet = future.run(until=datetime.now(timezone.utc) + timedelta(hours=1), max_polls=3)
    assert "max_polls" == not_yet.stopped_because  # the window is still open: no end yet
    with pytest.raises(ValueError, match="timezone-aware"):
        future.run(until=datetime(2026, 11, 30))  # noqa: DTZ001 - the point of the test


def test_import_until_then_import_again_is_every_record_once(aws: LocalAWS, tmp_path: Path) -> None:
    """The command: --from TRIM_HORIZON --until T, then a run from the checkpoints."""
    instant = window(aws, "orders", shards=2, before=30, after=20)
    db, out = tmp_path / "state.db", tmp_path / "events.jsonl"
    command = [sys.executable, "-m", "streambridge", "import", "--stream", "orders"]
    command += ["--event-key", "name", "--mappings", "n:n", "--from", "TRIM_HORIZON"]
    command += ["--checkpoints", str(db), "--output", str(out)]
    env = {**os.environ, **aws.environment()}
    first = subprocess.run(  # noqa: S603 - our own command, loopback only
        [*command, "--until", instant.isoformat()],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert 0 == first.returncode, first.stderr
    assert "stopped: until" in first.stderr
    numbers = [json.loads(line)["properties"]["n"] for line in out.read_text().splitlines()]
    assert list(range(30)) == sorted(numbers)
    again = subprocess.run(  # noqa: S603 - our own command, loopback only
        [*command, "--until-caught-up"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert 0 == again.returncode, again.stderr
    both = [json.loads(line)["properties"]["n"] for line in out.read_text().splitlines()]
    assert list(range(50)) == sorted(both)  # appended (a resumed run): each record once
    bad = subprocess.run(  # noqa: S603 - our own command, loopback only
        [*command, "--until", "yesterday"], env=env, capture_output=True, text=True, check=False
    )
    assert 2 == bad.returncode
    assert "--until must be an ISO 8601 time" in bad.stderr


def _timeout(seconds: float) -> Callable[[], bool]:
    """A stop function that ends a run that would otherwise never end (a failing test)."""
    deadline = time.monotonic() + seconds
    return lambda: time.monotonic() > deadline
