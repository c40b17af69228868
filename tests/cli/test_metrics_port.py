"""Issue 22: ``--metrics-port`` — a scrape of /metrics during a run shows the counters rising.

Each command runs in a subprocess against moto on 127.0.0.1, as an operator runs it; the
scrapes are parsed with prometheus-client's own parser of the text format.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from streambridge.testing import LocalAWS
from tests.cli.test_serve import SECRET, free_port, sample, serve

pytestmark = pytest.mark.integration

IMPORT = [sys.executable, "-m", "streambridge", "import"]
#: The series the issue names, present from the first scrape.
IMPORTER_SERIES = {
    "streambridge_records_read_total",
    "streambridge_events_delivered_total",
    "streambridge_records_skipped_total",
}
FORWARDER_SERIES = {
    "streambridge_records_read_total",
    "streambridge_records_sent_total",
    "streambridge_records_failed_total",
    "streambridge_records_skipped_total",
}


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics: {(name, labels): value}."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    """One sample's value."""
    return samples[(name, tuple(sorted(labels.items())))]


def wait_for(
    port: int, check: Callable[[dict[Any, float]], bool], process: Any
) -> dict[Any, float]:
    """Scrape until ``check`` holds (30 s at most); the last scrape."""
    deadline = time.monotonic() + 30
    last: dict[Any, float] = {}
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        try:
            last = scrape(port)
        except OSError:  # not listening yet
            time.sleep(0.1)
            continue
        if check(last):
            return last
        time.sleep(0.1)
    pytest.fail(f"the metrics never got there: {last}")


def test_an_import_serves_its_counters_rising_to_its_totals(aws: LocalAWS) -> None:
    """Records put in two parts: the scrapes follow them; the lag is per shard; the summary agrees."""
    aws.create_stream("clicks", shards=2)
    aws.put_records("clicks", [{"name": "click", "n": n} for n in range(40)])
    aws.put_records("clicks", [{"nameless": 1}])
    port = free_port()
    command = [sys.executable, "-m", "streambridge", "import", "--stream", "clicks"]
    command += ["--event-key", "name", "--start", "TRIM_HORIZON", "--output", os.devnull]
    command += ["--metrics-port", str(port)]
    env = {**os.environ, **aws.environment()}
    process = subprocess.Popen(  # noqa: S603 - our own command, loopback only
        command, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
    )
    try:
        first = wait_for(
            port,
            lambda s: value(s, "streambridge_events_delivered_total", stream="clicks") == 40,
            process,
        )
        assert IMPORTER_SERIES <= {name for name, _ in first}
        assert 41 == value(first, "streambridge_records_read_total", stream="clicks")
        assert 1 == value(first, "streambridge_records_skipped_total", stream="clicks")
        shards = {
            dict(labels)["shard"]
            for name, labels in first
            if name == "streambridge_lag_milliseconds"
        }
        assert {"shardId-000000000000", "shardId-000000000001"} == shards
        calls = value(first, "streambridge_aws_calls_total", stream="clicks")
        assert calls == value(first, "streambridge_aws_call_latency_seconds_count", stream="clicks")
        aws.put_records("clicks", [{"name": "more", "n": n} for n in range(25)])
        later = wait_for(
            port,
            lambda s: value(s, "streambridge_events_delivered_total", stream="clicks") == 65,
            process,
        )
        assert value(later, "streambridge_aws_calls_total", stream="clicks") > calls
    finally:
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)
    assert 0 == process.returncode, err
    assert "65 event(s)" in err or "65 events" in err, err


def test_a_forward_serves_its_counters_while_reading_a_live_input(aws: LocalAWS) -> None:
    """Batches written to a pipe in two parts: the scrapes follow them; none failed."""
    aws.create_delivery_stream("events")
    port = free_port()
    command = [sys.executable, "-m", "streambridge", "forward", "--stream", "events", "-"]
    command += ["--metrics-port", str(port)]
    env = {**os.environ, **aws.environment()}
    process = subprocess.Popen(  # noqa: S603 - our own command, loopback only
        command,
        env=env,
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdin is not None
    batch = json.loads(sample())
    try:
        for _ in range(3):
            process.stdin.write(json.dumps(batch) + "\n")
        process.stdin.write("not json\n")
        process.stdin.flush()
        first = wait_for(  # the input goes quiet: what is held is sent
            port,
            lambda s: (
                value(s, "streambridge_records_read_total", stream="events") == 3
                and value(s, "streambridge_records_sent_total", stream="events") > 0
            ),
            process,
        )
        assert FORWARDER_SERIES <= {name for name, _ in first}
        sent = value(first, "streambridge_records_sent_total", stream="events")
        process.stdin.write(json.dumps(batch) + "\n")
        process.stdin.flush()
        later = wait_for(
            port,
            lambda s: value(s, "streambridge_records_sent_total", stream="events") > sent,
            process,
        )
        assert 4 == value(later, "streambridge_records_read_total", stream="events")
        assert 0 == value(later, "streambridge_records_failed_total", stream="events")
    finally:
        _, err = process.communicate(timeout=30)  # closes the input: the run ends
    assert process.returncode in (0, 1), err  # the line that is no batch makes it 1
    assert len(aws.delivered("events")) == value(
        later, "streambridge_records_sent_total", stream="events"
    )


def test_serve_serves_the_metrics_of_every_request(aws: LocalAWS) -> None:
    """Two POSTs: records read 2, records sent what S3 got, latency counted per call."""
    aws.create_delivery_stream("hook")
    port = free_port()
    with serve(aws, "--metrics-port", str(port)) as served:
        assert 200 == served.post(sample())[0]
        assert 200 == served.post(sample())[0]
        samples = scrape(port)
        calls = value(samples, "streambridge_aws_calls_total", stream="hook")
        assert 2 == value(samples, "streambridge_records_read_total", stream="hook")
        assert calls == value(samples, "streambridge_aws_call_latency_seconds_count", stream="hook")
        assert 0 == value(samples, "streambridge_calls_in_flight", stream="hook")
        assert 0 == served.stop()
    assert len(aws.delivered("hook")) == value(
        samples, "streambridge_records_sent_total", stream="hook"
    )
    assert SECRET not in served.stderr


def test_a_port_taken_or_no_extra_is_a_usage_error(aws: LocalAWS) -> None:
    """A port already bound: exit 2 with the reason, before anything is read."""
    aws.create_stream("clicks")
    port = free_port()
    import socket  # noqa: PLC0415

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        done = subprocess.run(  # noqa: S603 - our own command, loopback only
            [*IMPORT, "--stream", "clicks", "--event-key", "name", "--metrics-port", str(port)],
            env={**os.environ, **aws.environment()},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert 2 == done.returncode, done.stderr
    assert f"cannot serve metrics on 127.0.0.1:{port}" in done.stderr
