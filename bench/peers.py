"""The importer against a peer consumer, async-kinesis, over real HTTP at 40 ms a call.

Run:  python bench/peers.py                 (builds .peers/, a venv with async-kinesis)
      python bench/peers.py --quick         (shorter windows)
      python bench/peers.py --peer-python /path/to/python   (a Python with async-kinesis)

Optional: async-kinesis is not a project dependency (it pins botocore through aiobotocore, so
it lives in a virtual environment of its own). Both consumers read the same loopback stand-in
(``bench/_stub_kinesis.py``, in its own process): 32 open shards, each call held 40 ms in the
server, every call counted there, so the figures are the server's, not the consumers' own
accounts. Each consumer runs in a fresh interpreter with its library's defaults and a default
client (botocore's 10 pooled connections; async-kinesis uses aiohttp's, also 10), then with
its pacing tuned to match the other's where the defaults differ.

1. 32 caught-up shards: start-up (first call to every shard polled once) and polls per shard
   per second afterwards (T4's case; the issue measured async-kinesis 1.36x our old rate).
2. 32 shards, 10 records a call, never caught up: ``GetRecords`` per second for the stream
   (AWS allows 5 per shard per second: 160) and records per second.
3. 32 shards, 500 records a call: records per second (bound by each consumer's CPU; ours
   also turns each record into a PostHog event, async-kinesis only parses the JSON).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _timing import StandIn

HERE = Path(__file__).resolve().parent
PEER_VENV = HERE.parent / ".peers"
PEER_PACKAGE = "async-kinesis==3.0.1"
SHARDS = 32
LATENCY = 0.04
ENV = {**os.environ, "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x"}


def peer_python(given: str | None) -> str:
    """A Python with async-kinesis: ``given``, or ``.peers/`` (built on first use)."""
    if given:
        return given
    python = PEER_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", PEER_PACKAGE], check=True)
    return str(python)


def stub_process(records: int) -> StandIn:
    """``_stub_kinesis.py`` in a process of its own, for one scenario."""
    return StandIn(
        "_stub_kinesis.py", "--shards", SHARDS, "--records", records, "--latency", LATENCY
    )


def run_child(command: list[str]) -> dict[str, Any]:
    """Run a consumer to completion; its last line of output, as JSON."""
    out = subprocess.run(command, capture_output=True, text=True, check=False, env=ENV)
    if out.returncode:
        sys.exit(f"{command[:3]} failed:\n{out.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def measure(stub: StandIn, command: list[str]) -> dict[str, Any]:
    """Run one consumer against a fresh count; what the server saw."""
    stub.get("/_reset")
    consumed = run_child(command)
    stats = stub.get("/_stats")
    polls: dict[str, list[float]] = stats["polls"]
    firsts = [times[0] for times in polls.values() if times]
    ends = [times[-1] for times in polls.values() if times]
    figures: dict[str, Any] = {"items": consumed["items"], "seconds": consumed["seconds"]}
    figures["rate"] = consumed["items"] / consumed["seconds"]
    figures["shards_polled"] = len(firsts)
    if len(firsts) == SHARDS:
        began, end = max(firsts), max(ends)
        figures["startup"] = began - stats["started"]
        window = [t for times in polls.values() for t in times if began <= t <= end]
        span = max(end - began, 1e-9)
        figures["calls_per_second"] = len(window) / span
        figures["polls_per_shard_second"] = len(window) / span / SHARDS
    figures["most_at_once"] = stats["most_at_once"]
    return figures


def ours_child(endpoint: str, seconds: float) -> None:
    """Runs in a subprocess: our importer, defaults and a default client, for ``seconds``."""
    import boto3  # noqa: PLC0415

    from streambridge import ImporterSettings, KinesisImporter  # noqa: PLC0415

    client = boto3.client("kinesis", region_name="us-east-1", endpoint_url=endpoint)
    settings = ImporterSettings(stream_name="s", event_key="properties.eventName")
    events = 0

    def sink(batch: Any) -> None:
        nonlocal events
        events += len(batch)

    importer = KinesisImporter(client, settings, sink=sink)
    start = time.monotonic()
    importer.run(stop=lambda: time.monotonic() - start >= seconds)
    print(json.dumps({"items": events, "seconds": time.monotonic() - start}))


def ours(endpoint: str, seconds: float) -> list[str]:
    """The command that runs our importer."""
    return [sys.executable, __file__, "--ours-child", endpoint, "--seconds", str(seconds)]


def theirs(python: str, endpoint: str, seconds: float, **options: float) -> list[str]:
    """The command that runs async-kinesis's consumer."""
    command = [python, str(HERE / "_peer_async_kinesis.py"), "--endpoint", endpoint]
    command += ["--seconds", str(seconds)]
    for name, value in options.items():
        command += [f"--{name.replace('_', '-')}", str(value)]
    return command


def line(name: str, figures: dict[str, Any], what: str) -> str:
    """One consumer's figures, formatted."""
    if figures["shards_polled"] < SHARDS:
        return f"   {name:<44} only {figures['shards_polled']}/{SHARDS} shards polled"
    rate = figures["rate"]
    parts = [f"start-up {figures['startup']:5.2f} s"]
    if what == "idle":
        parts.append(f"{figures['polls_per_shard_second']:5.2f} polls/shard/s")
    else:
        parts.append(f"{figures['calls_per_second']:6.1f} GetRecords/s")
        parts.append(f"{rate:9,.0f} records/s")
    parts.append(f"most at once {figures['most_at_once']:2d}")
    return f"   {name:<44} " + ", ".join(parts)


def scenario(
    title: str, records: int, seconds: float, peers: list[tuple[str, list[str]]], what: str
) -> dict[str, dict[str, Any]]:
    """One stand-in, every consumer in turn against it."""
    print(title)
    stub = stub_process(records)
    results: dict[str, dict[str, Any]] = {}
    try:
        for name, template in peers:
            command = [part.replace("{endpoint}", stub.url) for part in template]
            results[name] = measure(stub, command)
            print(line(name, results[name], what), flush=True)
    finally:
        stub.close()
    return results


def main() -> None:
    """Run the comparison."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--peer-python")
    parser.add_argument("--ours-child")
    parser.add_argument("--seconds", type=float, default=15.0)
    args = parser.parse_args()
    if args.ours_child:
        ours_child(args.ours_child, args.seconds)
        return
    python = peer_python(args.peer_python)
    seconds = 6.0 if args.quick else 15.0
    at = "{endpoint}"

    print(f"Each consumer for {seconds:.0f} s; {SHARDS} shards; the server holds each call 40 ms")
    idle = scenario(
        "1. caught up (T4's case)",
        0,
        seconds,
        [
            ("streambridge (idle poll 1 s)", ours(at, seconds)),
            ("async-kinesis (defaults: idle sleep 2 s)", theirs(python, at, seconds)),
            (
                "async-kinesis (idle sleep 1 s)",
                theirs(python, at, seconds, sleep_no_records=1.0),
            ),
        ],
        "idle",
    )
    busy = scenario(
        "2. 10 records a call, never caught up (AWS allows 160 GetRecords/s here)",
        10,
        seconds,
        [
            ("streambridge (defaults)", ours(at, seconds)),
            ("async-kinesis (defaults: 1 call/shard/s)", theirs(python, at, seconds)),
            ("async-kinesis (shard_fetch_rate=5)", theirs(python, at, seconds, fetch_rate=5)),
        ],
        "busy",
    )
    full = scenario(
        "3. 500 records a call (CPU-bound: ours converts, async-kinesis parses)",
        500,
        seconds,
        [
            ("streambridge (defaults)", ours(at, seconds)),
            ("async-kinesis (shard_fetch_rate=5)", theirs(python, at, seconds, fetch_rate=5)),
        ],
        "busy",
    )
    print("Ratios, streambridge / async-kinesis (same run):")
    for title, results, key in (
        ("1. polls per shard per second", idle, "polls_per_shard_second"),
        ("2. GetRecords per second", busy, "calls_per_second"),
        ("3. records per second", full, "rate"),
    ):
        mine = results[next(iter(results))].get(key)
        for name, figures in list(results.items())[1:]:
            other = figures.get(key)
            ratio = f"{mine / other:.2f}" if mine and other else "n/a (a consumer stalled)"
            print(f"   {title}, vs {name}: {ratio}")
    start_ours = idle["streambridge (idle poll 1 s)"].get("startup")
    start_theirs = idle["async-kinesis (defaults: idle sleep 2 s)"].get("startup")
    if start_ours and start_theirs:
        print(f"   start-up, 32 shards: {start_ours:.2f} s vs {start_theirs:.2f} s")


if __name__ == "__main__":
    main()
