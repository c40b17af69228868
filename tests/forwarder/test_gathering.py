"""Gatherer: records from many threads in shared calls, each caller told about its own."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from streambridge import FirehoseForwarder, ForwarderSettings, ForwardResult, RetryPolicy
from streambridge.deadletter import DeadLetterFile, read_dead_letters
from streambridge.forwarder.gathering import Delivered, Gatherer
from streambridge.testing import (
    FakeClock,
    FaultInjector,
    Latency,
    LocalAWS,
    PartialFailure,
    access_denied,
)

STREAM = "gathered"
SETTINGS = ForwarderSettings(delivery_stream_name=STREAM)


def forwarders(client: Any) -> Any:
    """A forwarder factory on ``client`` with a fake-clock retry budget."""
    clock = FakeClock()
    retry = RetryPolicy(max_attempts=3, max_elapsed=5)
    return lambda: FirehoseForwarder(client, SETTINGS, retry=retry, sleep=clock.sleep, clock=clock)


def callers(gatherer: Gatherer, count: int, per_caller: int) -> list[tuple[list[bytes], Delivered]]:
    """``count`` threads each delivering ``per_caller`` distinct records; what each was told."""
    told: list[tuple[list[bytes], Delivered]] = []
    lock = threading.Lock()

    def call(n: int) -> None:
        records = [json.dumps({"caller": n, "k": k}).encode() + b"\n" for k in range(per_caller)]
        outcome = gatherer.deliver(records)
        with lock:
            told.append((records, outcome))

    threads = [threading.Thread(target=call, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return told


def test_callers_waiting_together_share_calls(aws: LocalAWS) -> None:
    """40 callers at 50 ms a call, 2 calls at once: far fewer calls than callers, all in S3."""
    aws.create_delivery_stream(STREAM)
    client = aws.client("firehose")
    with Latency(client, 0.05), FaultInjector(client, keep_requests=True) as faults:
        gatherer = Gatherer(forwarders(client), calls=2)
        told = callers(gatherer, 40, 3)
        calls = sum(1 for operation, _ in faults.requests if operation == "PutRecordBatch")
    assert all(outcome == Delivered(3) for _, outcome in told)
    assert calls <= 20
    assert gatherer.sends == calls
    assert 120 == len(aws.delivered(STREAM))


def test_each_caller_hears_of_its_own_failures_only(aws: LocalAWS, tmp_path: Path) -> None:
    """A third of every shared call's entries refused for good, each caller told its own.

    Whoever was told "all sent" has every record in S3; every record not delivered is in the
    dead letter, once.
    """
    aws.create_delivery_stream(STREAM)
    client = aws.client("firehose")
    path = tmp_path / "dead.jsonl"
    with (
        Latency(client, 0.02),
        FaultInjector(client) as faults,
        DeadLetterFile(path) as letters,
    ):
        faults.always(
            "PutRecordBatch", PartialFailure(fraction=0.3, error_code="InvalidArgument", seed=5)
        )
        gatherer = Gatherer(forwarders(client), calls=3, dead_letter=letters)
        told = callers(gatherer, 30, 4)
    delivered = {json.dumps(r).encode() + b"\n" for r in aws.delivered(STREAM)}
    kept = [letter.data for letter in read_dead_letters(path)]
    assert len(kept) == len(set(kept))
    for records, outcome in told:
        missing = [r for r in records if r not in delivered]
        assert (len(records) - len(missing), len(missing)) == (outcome.sent, outcome.undelivered)
        if missing:
            assert ("InvalidArgument",) == outcome.codes
            assert (False, "written") == (outcome.retryable, outcome.kept)
            assert set(missing) <= set(kept)
    assert any(outcome.undelivered for _, outcome in told)
    assert any(not outcome.undelivered for _, outcome in told)


def test_a_call_level_refusal_reaches_every_caller(aws: LocalAWS) -> None:
    """Access denied on both operations: every caller told, not retryable, none left waiting."""
    aws.create_delivery_stream(STREAM)
    client = aws.client("firehose")
    with FaultInjector(client) as faults:
        faults.always("PutRecordBatch", access_denied())
        faults.always("PutRecord", access_denied())
        told = callers(Gatherer(forwarders(client), calls=2), 8, 2)
    assert 8 == len(told)
    for _, outcome in told:
        assert (0, 2, False, "none configured") == (
            outcome.sent,
            outcome.undelivered,
            outcome.retryable,
            outcome.kept,
        )
        assert "AccessDenied" in outcome.codes[0]


def test_a_bug_in_a_send_leaves_nobody_waiting(caplog: pytest.LogCaptureFixture) -> None:
    """The forwarder factory raising: every caller told "not delivered", the bug logged."""

    def broken() -> FirehoseForwarder:
        raise RuntimeError("boom")

    gatherer = Gatherer(broken, calls=1)
    told = callers(gatherer, 5, 2)
    assert [Delivered(0, 2, ("NotDelivered",), False, "NOT written")] * 5 == [o for _, o in told]
    assert "a shared send to Firehose failed" in caplog.text
    assert Delivered(0) == gatherer.deliver([])
    gatherer.close()
    with pytest.raises(ValueError, match="at least 1"):
        Gatherer(broken, calls=0)


class _Held:
    """A forwarder stand-in whose sends wait for ``release``, then deliver everything."""

    def __init__(self, release: threading.Event) -> None:
        """Sends wait for ``release``."""
        self.release = release

    def send(self, records: list[bytes]) -> Any:
        """Wait, then report every record delivered."""
        self.release.wait(10)
        return ForwardResult(sent=len(records))


def test_close_while_sends_are_in_flight_leaves_nobody_waiting() -> None:
    """close() while a send is held and callers queue: every caller is told, none hangs."""
    release = threading.Event()
    gatherer = Gatherer(lambda: _Held(release), calls=1)  # type: ignore[arg-type,return-value]
    told: list[Delivered] = []
    callers = [
        threading.Thread(target=lambda n=n: told.append(gatherer.deliver([b"%d" % n])))
        for n in range(4)
    ]
    for caller in callers:
        caller.start()
    closing = threading.Thread(target=gatherer.close)
    closing.start()
    release.set()
    for thread in [*callers, closing]:
        thread.join(10)
    assert [Delivered(1)] * 4 == told
    gatherer.close()
