"""async-kinesis's Consumer reading the stub stream for a while: run in the peer's own venv.

Not a project dependency: ``bench/peers.py`` builds a virtual environment with async-kinesis
in it (``.peers/``) and runs this file there. Prints ``{"items": n, "seconds": s}`` as its
last line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any


async def consume(args: argparse.Namespace) -> dict[str, float]:
    """Iterate the consumer until the time is up; the items it yielded, and the seconds."""
    from kinesis import Consumer  # type: ignore[import-not-found]  # noqa: PLC0415

    items = 0
    start = time.monotonic()
    deadline = start + args.seconds
    options: dict[str, Any] = {
        "endpoint_url": args.endpoint,
        "region_name": "us-east-1",
        "use_list_shards": True,
        "record_limit": args.limit,
        "sleep_time_no_records": args.sleep_no_records,
        "shard_fetch_rate": args.fetch_rate,
        "idle_timeout": 0.5,
    }
    async with Consumer(args.stream, **options) as consumer:
        while time.monotonic() < deadline:
            async for _item in consumer:
                items += 1
                if time.monotonic() >= deadline:
                    break
    return {"items": items, "seconds": time.monotonic() - start}


def main() -> None:
    """Parse the options, consume, print the count."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--stream", default="s")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--limit", type=int, default=10_000)
    parser.add_argument("--sleep-no-records", type=float, default=2.0)
    parser.add_argument("--fetch-rate", type=int, default=1)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(consume(args))))


if __name__ == "__main__":
    main()
