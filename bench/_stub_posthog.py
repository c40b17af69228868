"""A PostHog capture stand-in on loopback, with latency: ``POST /batch/`` over real HTTP.

Standard library only, in a process of its own (so that its gunzip and JSON parsing are not
on the measured process's cores' books... they still share the machine). Each request is
decompressed and parsed, its events counted (and their uuids, for duplicates), and answered
200 after sleeping ``--latency`` seconds in its own thread. It also counts the most requests
it held at once:

    GET /_stats   {"events": n, "unique": n, "requests": n, "most_at_once": n, "bytes": n}
    GET /_reset   forget the counts

Run:  python bench/_stub_posthog.py --latency 0.05   (prints its port, then serves until killed)
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Counts:
    """What the stand-in saw (shared by the handler threads)."""

    def __init__(self, latency: float) -> None:
        self.latency = latency
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Forget the counts."""
        with self.lock:
            self.events = 0
            self.uuids: set[str] = set()
            self.requests = 0
            self.bytes = 0
            self.in_flight = 0
            self.most_at_once = 0

    def stats(self) -> dict[str, Any]:
        """The counts, as JSON-ready data."""
        with self.lock:
            return {
                "events": self.events,
                "unique": len(self.uuids),
                "requests": self.requests,
                "bytes": self.bytes,
                "most_at_once": self.most_at_once,
            }

    def hold(self, change: int) -> None:
        """Count a request arriving (+1) or answered (-1)."""
        with self.lock:
            self.in_flight += change
            self.most_at_once = max(self.most_at_once, self.in_flight)


def serve(counts: Counts) -> ThreadingHTTPServer:
    """A threaded HTTP/1.1 server for ``counts`` on 127.0.0.1 (not started)."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            """Quiet."""

        def _send(self, payload: bytes) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_GET(self) -> None:
            if self.path == "/_reset":
                counts.reset()
            self._send(json.dumps(counts.stats()).encode())

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            counts.hold(+1)
            try:
                size = len(raw)
                if self.headers.get("Content-Encoding") == "gzip":
                    raw = gzip.decompress(raw)
                batch = json.loads(raw)["batch"]
                with counts.lock:
                    counts.requests += 1
                    counts.bytes += size
                    counts.events += len(batch)
                    counts.uuids.update(event["uuid"] for event in batch)
                time.sleep(counts.latency)
            finally:
                counts.hold(-1)
            self._send(b'{"status":"Ok"}')

    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer.request_queue_size = 128
    return ThreadingHTTPServer(("127.0.0.1", 0), Handler)


def main() -> None:
    """Serve until killed; print the port first."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--latency", type=float, default=0.0)
    args = parser.parse_args()
    server = serve(Counts(args.latency))
    print(server.server_address[1], flush=True)
    sys.stdout.close()
    server.serve_forever()


if __name__ == "__main__":
    main()
