"""The Lambda handler keeps sink calls in flight (issue 19); failures are reported as before.

An invocation's records are shared out over the sink's ``calls_in_flight``; outcomes are
taken in order, and from the first call that failed every record is reported for a retry —
its skips too, which come back with the retry instead of being handed back twice.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

from streambridge import PostHogEvent, PostHogSink, SkippedRecord, make_handler
from streambridge.testing import local_posthog
from tests.importer.test_lambda import SETTINGS, doc, failures, kinesis_event, record


def test_an_invocation_goes_out_with_requests_in_flight() -> None:
    """1,000 records, PostHog answering in 100 ms: several requests at once, all delivered."""
    with local_posthog() as posthog:
        posthog.delay = 0.1
        handler = make_handler(SETTINGS, PostHogSink(api_key="k", host=posthog.url))
        answer = handler(kinesis_event(1_000), None)
        assert [] == failures(answer)
        assert posthog.peak_in_flight >= 2
        assert set(range(1_000)) == {e["properties"]["n"] for e in posthog.events}


class SlowSink:
    """Four calls at once; the call holding record ``fail_at`` fails, the others are slow."""

    calls_in_flight = 4

    def __init__(self, fail_at: int) -> None:
        """Fail the call that holds event ``n == fail_at``."""
        self.fail_at = fail_at
        self.taken: list[int] = []
        self.in_flight = 0
        self.peak = 0
        self._lock = threading.Lock()

    def __call__(self, events: Sequence[PostHogEvent]) -> None:
        """Take the events after 50 ms, or fail."""
        numbers = [int(e.properties["n"]) for e in events]
        with self._lock:
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
        try:
            time.sleep(0.05)
            if self.fail_at in numbers:
                raise ConnectionError("PostHog is down for this one")
            with self._lock:
                self.taken += numbers
        finally:
            with self._lock:
                self.in_flight -= 1


def test_a_call_failing_in_flight_reports_its_first_record_and_all_after() -> None:
    """Calls of 100 records, the third fails while others are in flight: 200 on are retried."""
    sink = SlowSink(fail_at=250)
    handler = make_handler(SETTINGS, sink, records_per_sink_call=100)
    answer = handler(kinesis_event(800), None)
    assert [str(100 + n) for n in range(200, 800)] == failures(answer)
    assert set(range(200)) <= set(sink.taken)
    assert sink.peak >= 2


def test_the_skips_of_a_failed_call_come_back_with_the_retry_not_twice() -> None:
    """A poison record in the failed call (with record 3) is retried, not also handed back."""
    sink = SlowSink(fail_at=3)
    skipped: list[SkippedRecord] = []
    raws = [record(str(100 + n), doc(n) if n != 2 else b"not json") for n in range(6)]
    raws.append(record("900", b"also not json"))  # in a later call, after the failure
    handler = make_handler(SETTINGS, sink, on_skip=skipped.append, records_per_sink_call=2)
    answer = handler({"Records": raws}, None)
    assert ["102", "103", "104", "105", "900"] == failures(answer)
    assert [] == skipped
