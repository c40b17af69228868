"""A fake clock: backoff and pacing run in no real time, in the same order as with real time."""

from __future__ import annotations

import threading

__all__ = ["FakeClock"]


class FakeClock:
    """A monotonic clock that moves only when :meth:`sleep` (or :meth:`advance`) is called.

    Pass it as ``clock=clock, sleep=clock.sleep`` to a forwarder or an importer: backoff and
    pacing then run in no real time, in the same order as with real time. It is thread-safe;
    with several calls in flight, every sending thread's sleeps move the one clock — give the
    forwarder ``max_in_flight=1`` for a test that steps through calls one by one.
    """

    def __init__(self, start: float = 0.0) -> None:
        """Start at ``start`` seconds."""
        self.now = start
        self.slept: list[float] = []
        self._lock = threading.Lock()

    def __call__(self) -> float:
        """The current time."""
        return self.now

    def sleep(self, seconds: float) -> None:
        """Move time forward by ``seconds`` (recorded in :attr:`slept`)."""
        with self._lock:
            self.slept.append(seconds)
            self.now += max(seconds, 0.0)

    def advance(self, seconds: float) -> None:
        """Move time forward without recording a sleep."""
        with self._lock:
            self.now += seconds
