"""``streambridge serve`` under load (issue 20): ratios against baselines measured in the same run.

Run:  python bench/serve.py            (needs the `serve` and `fast` extras)
      python bench/serve.py --quick    (fewer requests, for a smoke run)

A Firehose stand-in in its own process (``_stub_kinesis.py``) answers every call after 40 ms
and counts the records it received (and their distinct data: "every record delivered" is read
back from it). The sample batches, each with a batch id of its own, one record per event (the
Webhook integration's default, Send as Batch off), are:

1. POSTed to ``streambridge serve`` (a subprocess) by 50 clients, each with a keep-alive
   connection, one request at a time (as a client that waits for its answer does): records/s,
   requests/s, p50 / p99 answer time, Firehose calls per request; against
   a. ``forward_many`` on the same batches (one caller, 500 records a call, calls in flight);
   b. the library used as serve uses it: 50 threads, each forwarding its batches one by one;
   c. the bound every closed-loop client population meets: 50 requests per 40 ms (Little's
      law: a request is answered only once Firehose has answered).
2. Peak RSS of ``serve`` under 50 clients ÷ under 5 (a fresh server for each).
3. The server, chosen by measurement: the same receiver under waitress (a threaded WSGI
   server, ``_waitress_serve.py``; skipped when waitress is not installed) against serve
   (uvicorn, ASGI): records/s, answer times, CPU a request, peak RSS.
"""

from __future__ import annotations

import argparse
import copy
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from _timing import StandIn

from streambridge import FirehoseForwarder, ForwarderSettings
from streambridge._demo import sample_batches

LATENCY = 0.04
SECRET = "Basic YmVuY2g6YmVuY2g="  # noqa: S105 - a benchmark's value
SETTINGS = {"Delivery Stream Name": "bench", "Send as Batch": False}
ENV = {
    **os.environ,
    "AWS_ACCESS_KEY_ID": "x",
    "AWS_SECRET_ACCESS_KEY": "x",
    "AWS_DEFAULT_REGION": "us-east-1",
    "STREAMBRIDGE_AUTHORIZATION": SECRET,
}


def batches(count: int) -> list[dict[str, Any]]:
    """``count`` sample batches (those with events), each with a batch id of its own."""
    samples = [b for _, b in sample_batches() if b.get("events")]
    out = []
    for n in range(count):
        batch = copy.deepcopy(samples[n % len(samples)])
        batch["batch_id"] = 10_000_000 + n
        out.append(batch)
    return out


def free_port() -> int:
    """A loopback port nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Served:
    """``streambridge serve`` in a subprocess, in front of the stand-in."""

    def __init__(self, endpoint: str, settings: Path, *, server: str = "serve") -> None:
        """Start it (``server`` "waitress": the receiver under waitress); wait for /healthz."""
        self.port = free_port()
        command = [sys.executable, "-m", "streambridge", "serve", "--settings", str(settings)]
        command += ["--port", str(self.port), "--endpoint-url", endpoint, "--quiet"]
        if server == "waitress":
            script = str(Path(__file__).parent / "_waitress_serve.py")
            command = [sys.executable, script, str(settings), str(self.port), endpoint]
        self.process = subprocess.Popen(command, env=ENV, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while not _healthy(self.port):
            if time.monotonic() > deadline:
                sys.exit("serve did not start")
            time.sleep(0.05)

    def peak_rss_mb(self) -> float:
        """The server process's peak resident memory so far (VmHWM), in MB."""
        status = Path(f"/proc/{self.process.pid}/status").read_text(encoding="utf-8")
        line = next(line for line in status.splitlines() if line.startswith("VmHWM"))
        return int(line.split()[1]) / 1024

    def cpu_seconds(self) -> float:
        """The server process's CPU time so far (user + system, all threads)."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text(encoding="utf-8").split(")")[-1]
        utime, stime = fields.split()[11:13]
        return (int(utime) + int(stime)) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        """SIGTERM and wait."""
        self.process.terminate()
        self.process.wait(timeout=60)


def _healthy(port: int) -> bool:
    """Whether /healthz answers on ``port``."""
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        connection.request("GET", "/healthz")
        connection.getresponse().read()
        connection.close()
    except OSError:
        return False
    return True


def post_all(port: int, bodies: list[bytes], clients: int) -> tuple[float, list[float], int]:
    """``clients`` threads POSTing ``bodies`` (shared out), each waiting for its answer.

    Returns:
        Seconds for all, each answer's seconds, and how many were not answered 200.
    """
    times: list[float] = []
    refused = 0
    lock = threading.Lock()

    def client(mine: list[bytes]) -> None:
        nonlocal refused
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        headers = {"Authorization": SECRET, "Content-Type": "application/json"}
        mine_times, mine_refused = [], 0
        for body in mine:
            start = time.perf_counter()
            connection.request("POST", "/", body=body, headers=headers)
            answer = connection.getresponse()
            answer.read()
            mine_times.append(time.perf_counter() - start)
            mine_refused += answer.status != 200
        connection.close()
        with lock:
            times.extend(mine_times)
            refused += mine_refused

    shares = [bodies[n::clients] for n in range(clients)]
    threads = [threading.Thread(target=client, args=(share,)) for share in shares]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - start, times, refused


def quantile(values: list[float], q: float) -> float:
    """The ``q`` quantile (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def load(requests: int) -> None:
    """Section 1 and 2."""
    the_batches = batches(requests)
    bodies = [json.dumps(b).encode() for b in the_batches]
    stub = StandIn("_stub_kinesis.py", "--shards", 1, "--records", 0, "--latency", LATENCY)
    work = tempfile.mkdtemp()
    settings_file = Path(work) / "mparticle.json"
    settings_file.write_text(json.dumps(SETTINGS), encoding="utf-8")
    settings = ForwarderSettings.from_mparticle(
        {
            **SETTINGS,
            "AWS Region Endpoint": "us-east-1",
            "Access Key ID": "x",
            "Secret Access Key": "x",
        }
    )
    try:
        probe = FirehoseForwarder.from_settings(settings, endpoint_url=stub.url)
        expected = {r for b in the_batches for r in probe.prepare(copy.deepcopy(b))[0]}
        print(f"1. {requests:,} sample batches, one record per event ({len(expected):,} records),")
        print(f"   Firehose stand-in answering after {LATENCY * 1000:.0f} ms")
        stub.get("/_reset")
        seconds, times, refused, cpu, peak_50 = _serve_run(stub.url, settings_file, bodies, 50)
        stats = stub.get("/_stats")
        calls = stats["calls"].get("PutRecordBatch", 0)
        serve_rate = stats["put_records"] / seconds
        print(
            f"   serve, 50 clients: {serve_rate:,.0f} records/s, {requests / seconds:,.0f} "
            f"requests/s; answer p50 {quantile(times, 0.5) * 1000:.0f} ms, "
            f"p99 {quantile(times, 0.99) * 1000:.0f} ms; {calls / requests:.2f} Firehose calls "
            f"a request; {stats['put_distinct']:,} of {len(expected):,} records delivered, "
            f"{refused} requests not answered 200; serve's CPU {cpu / requests * 1e6:,.0f} µs a "
            f"request ({cpu / seconds:.0%} of a core)"
        )
        stub.get("/_reset")
        forwarder = FirehoseForwarder.from_settings(settings, endpoint_url=stub.url)
        start = time.perf_counter()
        result = forwarder.forward_many(copy.deepcopy(the_batches))
        many_rate = result.sent / (time.perf_counter() - start)
        print(f"   a. forward_many, one caller: {many_rate:,.0f} records/s")
        stub.get("/_reset")
        threads_rate = _threads(settings, stub.url, the_batches, 50)
        print(f"   b. 50 threads, forward() each batch: {threads_rate:,.0f} records/s")
        bound = 50 / LATENCY * len(expected) / requests
        print(f"   c. 50 clients / {LATENCY * 1000:.0f} ms: at most {bound:,.0f} records/s")
        print(
            f"   serve / forward_many {serve_rate / many_rate:.2f}; serve / 50 threads "
            f"{serve_rate / threads_rate:.2f}; serve / bound {serve_rate / bound:.2f}"
        )
        stub.get("/_reset")
        peak_5 = _serve_run(stub.url, settings_file, bodies, 5)[-1]
        print(
            f"2. serve's peak RSS: {peak_50:.1f} MB under 50 clients, {peak_5:.1f} MB under 5: "
            f"{peak_50 / peak_5:.2f} (target <= 1.2)"
        )
        _waitress(stub, settings_file, bodies, serve_rate, cpu / requests, peak_50)
    finally:
        stub.close()


def _serve_run(
    endpoint: str, settings_file: Path, bodies: list[bytes], clients: int, server: str = "serve"
) -> tuple[float, list[float], int, float, float]:
    """A fresh server under ``clients``: seconds, answer times, refused, its CPU s, peak MB."""
    served = Served(endpoint, settings_file, server=server)
    try:
        cpu = served.cpu_seconds()
        seconds, times, refused = post_all(served.port, bodies, clients)
        return seconds, times, refused, served.cpu_seconds() - cpu, served.peak_rss_mb()
    finally:
        served.stop()


def _waitress(
    stub: StandIn,
    settings_file: Path,
    bodies: list[bytes],
    serve_rate: float,
    serve_cpu: float,
    serve_peak: float,
) -> None:
    """Section 3: the same receiver under waitress (WSGI), a thread per waiting request."""
    try:
        import waitress  # noqa: F401, PLC0415
    except ImportError:
        print("3. waitress is not installed: no comparison (pip install waitress)")
        return
    stub.get("/_reset")
    seconds, times, refused, cpu, peak = _serve_run(
        stub.url, settings_file, bodies, 50, server="waitress"
    )
    rate = stub.get("/_stats")["put_records"] / seconds
    print(
        f"3. the same receiver under waitress (WSGI, 64 threads), 50 clients: {rate:,.0f} "
        f"records/s, answer p50 {quantile(times, 0.5) * 1000:.0f} ms, p99 "
        f"{quantile(times, 0.99) * 1000:.0f} ms, CPU {cpu / len(bodies) * 1e6:,.0f} µs a "
        f"request, peak RSS {peak:.1f} MB, {refused} not answered 200; serve / waitress: "
        f"records/s {serve_rate / rate:.2f}, CPU a request {serve_cpu * len(bodies) / cpu:.2f}, "
        f"peak RSS {serve_peak / peak:.2f}"
    )


def _threads(
    settings: ForwarderSettings, endpoint: str, the_batches: list[Any], count: int
) -> float:
    """Records/s of ``count`` threads, each with a forwarder, forwarding batches one by one."""
    shares = [copy.deepcopy(the_batches[n::count]) for n in range(count)]
    forwarders = [FirehoseForwarder.from_settings(settings, endpoint_url=endpoint) for _ in shares]

    def run(n: int) -> int:
        return sum(forwarders[n].forward(batch).sent for batch in shares[n])

    start = time.perf_counter()
    with ThreadPoolExecutor(count) as pool:
        sent = sum(pool.map(run, range(count)))
    return sent / (time.perf_counter() - start)


def main() -> None:
    """Run the benchmark."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    load(1_000 if args.quick else 4_000)


if __name__ == "__main__":
    main()
