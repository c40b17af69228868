"""What the benchmark scripts share: timing, an offline client, measuring in a fresh process."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config


def best_rate(work: Callable[[], int], seconds: float) -> float:
    """Items per second of the fastest of several runs lasting about `seconds` in total."""
    best = 0.0
    deadline = time.perf_counter() + seconds
    while True:
        start = time.perf_counter()
        items = work()
        best = max(best, items / (time.perf_counter() - start))
        if time.perf_counter() > deadline:
            return best


def offline_client(service: str) -> Any:
    """A boto3 client for an endpoint nothing listens on: faults answer every call first."""
    return boto3.client(  # type: ignore[call-overload]
        service,
        region_name="us-east-1",
        endpoint_url="http://127.0.0.1:9",
        aws_access_key_id="x",
        aws_secret_access_key="x",
        config=Config(retries={"total_max_attempts": 1}, max_pool_connections=32),
    )


def in_child(script: str, flag: str, value: int) -> dict[str, Any]:
    """Run ``script flag value`` in a fresh interpreter; its last line of output, as JSON."""
    out = subprocess.run(
        [sys.executable, script, flag, str(value)], capture_output=True, text=True, check=True
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


class StandIn:
    """A stand-in server script of ``bench/`` (``_stub_kinesis.py``, ``_stub_posthog.py``) in a
    process of its own: it prints its port, then serves ``/_stats`` and ``/_reset``."""

    def __init__(self, script: str, *options: object) -> None:
        """Start ``bench/<script>`` with ``options``; wait for its port."""
        command = [sys.executable, str(Path(__file__).parent / script), *map(str, options)]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        self.url = f"http://127.0.0.1:{self.process.stdout.readline().strip()}"

    def get(self, path: str) -> dict[str, Any]:
        """``/_stats`` or ``/_reset``."""
        with urllib.request.urlopen(self.url + path) as answer:  # noqa: S310 - loopback
            data: dict[str, Any] = json.loads(answer.read())
        return data

    def close(self) -> None:
        """Stop it."""
        self.process.kill()
        self.process.wait()
