"""A Kinesis (and Firehose) stand-in on loopback, with latency: canned answers over real HTTP.

Standard library only, so that any consumer's interpreter (ours, or a peer's in its own
virtual environment) can talk to it. It answers ``ListShards``, ``DescribeStream``,
``GetShardIterator`` and ``GetRecords`` (JSON 1.1, as botocore sends them) for a stream of
``--shards`` open shards, each ``GetRecords`` with ``--records`` records (0: caught up), after
sleeping ``--latency`` seconds in its own thread, so calls overlap as they do on the network.
It also accepts every Firehose ``PutRecordBatch`` and ``PutRecord``. It counts every call,
each ``GetRecords`` per shard with the time it arrived, and the most calls it held at once:

    GET /_stats   {"calls": {operation: n}, "polls": {shard: [t, ...]}, "started": t | null,
                   "most_at_once": n, "put_records": n, "put_distinct": n}
    GET /_reset   forget the counts

Run:  python bench/_stub_kinesis.py --shards 32 --records 10 --latency 0.04
      (prints the port it listens on, then serves until killed)
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def record_data() -> str:
    """One realistic PostHog-app-style record (about 450 bytes), base64 as Kinesis sends it."""
    rng = random.Random(7)
    record = {
        "properties": {
            "eventName": "Viewed Page",
            "userId": f"user-{rng.randrange(10_000)}",
            "plan": "pro",
            "amount": 12.5,
            "items": [{"sku": "SKU-17", "qty": 2}],
            "flags": {"beta": True, "ab": "B"},
        },
        "context": {
            "page": {"path": "/p/42", "referrer": "https://example.com/"},
            "userAgent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36",
            "ip": "203.0.113.7",
        },
        "sentAt": "2024-05-01T12:00:00.000Z",
        "messageId": "msg-00000001",
    }
    return base64.b64encode(json.dumps(record).encode()).decode()


class Stub:
    """The stream's state and counts (shared by the handler threads)."""

    def __init__(self, shards: int, records: int, latency: float) -> None:
        self.shard_ids = [f"shardId-{n:012d}" for n in range(shards)]
        self.records = records
        self.latency = latency
        self.data = record_data()
        self.lock = threading.Lock()
        self.next_sequence = dict.fromkeys(self.shard_ids, 10**20)
        self.reset()

    def reset(self) -> None:
        """Forget the counts."""
        with self.lock:
            self.calls: dict[str, int] = {}
            self.polls: dict[str, list[float]] = {s: [] for s in self.shard_ids}
            self.started: float | None = None
            self.in_flight = 0
            self.most_at_once = 0
            self.put_records = 0  # Firehose records received (a retry counts again)
            self.put_distinct: set[str] = set()  # their distinct data (base64)

    def stats(self) -> dict[str, Any]:
        """The counts, as JSON-ready data."""
        with self.lock:
            return {
                "calls": dict(self.calls),
                "polls": self.polls,
                "started": self.started,
                "most_at_once": self.most_at_once,
                "put_records": self.put_records,
                "put_distinct": len(self.put_distinct),
            }

    def hold(self, change: int) -> None:
        """Count a call arriving (+1) or answered (-1)."""
        with self.lock:
            self.in_flight += change
            self.most_at_once = max(self.most_at_once, self.in_flight)

    def answer(self, operation: str, body: dict[str, Any]) -> dict[str, Any]:
        """The canned answer to one call."""
        now = time.monotonic()
        with self.lock:
            self.calls[operation] = self.calls.get(operation, 0) + 1
            if self.started is None:
                self.started = now
        shards = [
            {
                "ShardId": shard,
                "HashKeyRange": {"StartingHashKey": "0", "EndingHashKey": "1"},
                "SequenceNumberRange": {"StartingSequenceNumber": "1"},
            }
            for shard in self.shard_ids
        ]
        if operation == "ListShards":
            return {"Shards": shards}
        if operation in ("PutRecordBatch", "PutRecord"):
            entries = body["Records"] if operation == "PutRecordBatch" else [body["Record"]]
            with self.lock:
                self.put_records += len(entries)
                self.put_distinct.update(entry["Data"] for entry in entries)
        if operation == "PutRecordBatch":
            answers = [{"RecordId": "r"} for _ in body["Records"]]
            return {"FailedPutCount": 0, "Encrypted": False, "RequestResponses": answers}
        if operation == "PutRecord":
            return {"RecordId": "r", "Encrypted": False}
        if operation == "DescribeStream":
            return {
                "StreamDescription": {
                    "StreamName": body.get("StreamName", "s"),
                    "StreamARN": "arn:aws:kinesis:us-east-1:123456789012:stream/s",
                    "StreamStatus": "ACTIVE",
                    "Shards": shards,
                    "HasMoreShards": False,
                    "RetentionPeriodHours": 24,
                    "StreamCreationTimestamp": 1.7e9,
                    "EnhancedMonitoring": [],
                }
            }
        if operation == "GetShardIterator":
            return {"ShardIterator": body["ShardId"]}
        if operation == "GetRecords":
            shard = body["ShardIterator"]
            with self.lock:
                self.polls[shard].append(now)
                first = self.next_sequence[shard]
                self.next_sequence[shard] = first + self.records
            page = [
                {
                    "Data": self.data,
                    "SequenceNumber": str(first + n),
                    "PartitionKey": "k",
                    "ApproximateArrivalTimestamp": 1.7e9,
                }
                for n in range(self.records)
            ]
            behind = 1000 if self.records else 0
            return {"Records": page, "NextShardIterator": shard, "MillisBehindLatest": behind}
        msg = f"the stub does not answer {operation}"
        raise KeyError(msg)


def serve(stub: Stub, port: int = 0) -> ThreadingHTTPServer:
    """A threaded HTTP/1.1 server for ``stub`` on 127.0.0.1 (not started)."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms wait

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            """Quiet."""

        def _send(self, status: int, payload: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/x-amz-json-1.1")
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("x-amzn-RequestId", "stub")
            self.end_headers()
            self.wfile.write(payload)

        def do_GET(self) -> None:
            if self.path == "/_reset":
                stub.reset()
            self._send(200, json.dumps(stub.stats()).encode())

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            operation = self.headers.get("X-Amz-Target", ".").split(".")[-1]
            stub.hold(+1)
            try:
                time.sleep(stub.latency)
                status, payload = 200, json.dumps(stub.answer(operation, body)).encode()
            except KeyError as exc:
                error = {"__type": "InvalidArgumentException", "message": str(exc)}
                status, payload = 400, json.dumps(error).encode()
            finally:
                stub.hold(-1)  # before answering: the client may send its next call at once
            self._send(status, payload)

    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer.request_queue_size = 128
    return ThreadingHTTPServer(("127.0.0.1", port), Handler)


def main() -> None:
    """Serve until killed; print the port first."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--shards", type=int, default=32)
    parser.add_argument("--records", type=int, default=10)
    parser.add_argument("--latency", type=float, default=0.04)
    args = parser.parse_args()
    server = serve(Stub(args.shards, args.records, args.latency))
    print(server.server_address[1], flush=True)
    sys.stdout.close()
    server.serve_forever()


if __name__ == "__main__":
    main()
