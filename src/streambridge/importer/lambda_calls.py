"""One sink call of a Lambda invocation: its records, their events, and what came of it."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import attrs

from streambridge._lambda_records import LambdaRecord
from streambridge.errors import FatalSinkError
from streambridge.importer.events import PostHogEvent
from streambridge.importer.results import SkippedRecord
from streambridge.importer.sinks import Sink

if TYPE_CHECKING:
    from concurrent.futures import Future

__all__ = ["SinkCall"]


@attrs.define(eq=False)
class SinkCall:
    """One sink call of an invocation (:class:`~streambridge.LambdaHandler`'s).

    Attributes:
        records: The invocation's records whose events it carries.
        events: Their events.
        skipped: Those of the records that gave no event.
        stream: The records' stream.
        future: The call in flight (None: made in the handler's thread, or not made).
        answer: The sink's answer, once ended.
        error: What the sink raised, once ended.
        seconds: How long the sink took, once it ended.
    """

    records: Sequence[LambdaRecord]
    events: list[PostHogEvent]
    skipped: list[SkippedRecord]
    stream: str = ""
    future: Future[object] | None = None
    answer: object = None
    error: Exception | None = None
    seconds: float | None = None

    def send(self, sink: Sink) -> object:
        """The sink's call with the events; how long it took kept in :attr:`seconds`."""
        start = time.perf_counter()
        try:
            return sink(self.events)
        finally:
            self.seconds = time.perf_counter() - start

    def end(self) -> None:
        """Wait for the call in flight, and keep its answer or error."""
        if self.future is not None:
            try:
                self.answer = self.future.result()
            except Exception as exc:  # noqa: BLE001 - any sink failure: the mapping retries
                self.error = exc

    def log_failure(self, logger: logging.Logger) -> None:
        """Say why the call failed: its records are left for a retry."""
        if isinstance(self.error, FatalSinkError):
            logger.error(
                "the sink cannot take events (%s); left for a retry",
                self.error,
                extra=self.fields(),
            )
        else:
            logger.warning(
                "the sink did not take %d event(s) (%r); left for a retry",
                len(self.events),
                self.error,
                extra=self.fields(),
            )

    def fields(self) -> dict[str, object]:
        """The structured fields of a log line about this call: its first record, its size."""
        first = self.records[0].identity() if self.records else {"stream": self.stream}
        return {**first, "events": len(self.events), "error_code": type(self.error).__name__}
