"""Timing shared by the benchmark scripts."""

from __future__ import annotations

import time
from collections.abc import Callable


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
