"""The progress line of the long commands, on a terminal only (``aws s3 cp``'s kind)."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from streambridge._logging import JsonFormatter

if TYPE_CHECKING:
    from datetime import datetime

    from streambridge.importer import ImportResult, ImportTotals
    from streambridge.importer.importer import KinesisImporter

__all__ = ["Progress", "import_reporter", "json_logs"]


def json_logs() -> bool:
    """Whether the command logs JSON lines (``--log-format json``): no progress line then."""
    handlers = logging.getLogger("streambridge").handlers
    return any(isinstance(h.formatter, JsonFormatter) for h in handlers)


class Progress:
    """Progress on stderr, only when it is a terminal; at most every half second."""

    def __init__(
        self,
        *,
        enabled: bool,
        clock: Callable[[], float] = time.monotonic,
        noun: str = "batches",
    ) -> None:
        self.enabled = enabled and sys.stderr.isatty() and not json_logs()
        self.count = 0
        self.started = time.monotonic()
        self._last = 0.0
        self._shown = False
        self.detail: Callable[[], str] | None = None  # more to say, after the count
        self._lags: list[tuple[float, int]] = []  # (when, lag) of an import, for catch_up
        self._clock = clock
        self.noun = noun  # what is counted: "batches", or "records" (a replay)

    def tick(self) -> None:
        self.count += 1
        if self.enabled and time.monotonic() - self._last >= 0.5:  # noqa: PLR2004 - as show()
            rate = self.count / max(time.monotonic() - self.started, 1e-9)
            more = self.detail() if self.detail is not None else ""
            self.show(f"{self.count} {self.noun} read, {rate:,.0f}/s{more}")

    def show(self, text: str) -> None:
        now = time.monotonic()
        if not self.enabled or now - self._last < 0.5:  # noqa: PLR2004
            return
        self._last = now
        self._shown = True
        sys.stderr.write(f"\r{text}\x1b[K")
        sys.stderr.flush()

    def catch_up(self, lag_ms: int) -> str:
        """``, caught up in ~N s`` from how fast the lag fell over the last half minute."""
        now = self._clock()
        self._lags.append((now, lag_ms))
        while len(self._lags) > 2 and now - self._lags[1][0] >= 30:  # noqa: PLR2004
            self._lags.pop(0)
        (since, was) = self._lags[0]
        elapsed = now - since
        if lag_ms <= 0:
            return ", caught up"
        if elapsed < 5 or was <= lag_ms:  # noqa: PLR2004 - too soon to say, or not gaining
            return ""
        falling = (was - lag_ms) / elapsed  # ms of lag gone per second
        return f", caught up in ~{lag_ms / falling:,.0f} s"

    def done(self) -> None:
        if self._shown:
            sys.stderr.write("\n")


def import_reporter(
    progress: Progress, importer: KinesisImporter, until: datetime | None
) -> Callable[[ImportResult, ImportTotals], None]:
    """The ``on_poll`` that shows the progress line: events, rate, lag, time to catch up."""

    def report(result: ImportResult, totals: ImportTotals) -> None:
        if not progress.enabled:
            return
        lag = max(totals.lag.values(), default=0)
        rate = totals.records / max(time.monotonic() - progress.started, 1e-9)
        window = ""
        if until is not None:
            shards = importer.window_progress()
            window = f", {shards[0]} of {shards[1]} shard(s) read to --until"
        progress.show(
            f"{totals.events} events, {totals.skipped} skipped, {rate:,.0f} records/s, "
            f"lag {lag} ms{progress.catch_up(lag)}{window}"
        )

    return report
