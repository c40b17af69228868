"""Unit tests of streambridge.forwarder.delivery: the per-entry ledger, stops, stream readiness."""

from __future__ import annotations

import pytest

from streambridge import (
    AccessDeniedError,
    DeliveryStreamInfo,
    FailedRecord,
    ForwardAbortedError,
    ForwardResult,
    StreamNotReadyError,
)
from streambridge.forwarder.delivery import EntryError, Ledger, Stopped, carrying, not_ready

THROTTLED = EntryError("ThrottlingException", "Rate exceeded", retryable=True)
INVALID = EntryError("InvalidArgumentException", "bad", retryable=False)


def test_a_round_settles_each_record() -> None:
    """Delivered ones are counted, retryable ones stay pending, the others fail with attempts."""
    ledger = Ledger([b"a", b"b", b"c", b"d"])
    assert [b"a", b"b", b"c", b"d"] == ledger.to_send()
    delivered, failed = ledger.settle([None, THROTTLED, INVALID, THROTTLED])
    assert 1 == delivered
    assert [FailedRecord(b"c", "InvalidArgumentException", "bad", 1)] == failed
    assert [1, 3] == ledger.pending
    assert [b"b", b"d"] == ledger.to_send()
    assert ["ThrottlingException"] == ledger.codes()
    assert not ledger.done


def test_retries_count_attempts_and_giving_up_fails_with_the_last_error() -> None:
    """A record sent three times fails with attempts 3 and its last error."""
    ledger = Ledger([b"a", b"b"])
    ledger.settle([THROTTLED, None])
    ledger.settle([EntryError("ServiceUnavailableException", "Slow down.", retryable=True)])
    ledger.settle([EntryError("InternalFailure", "oops", retryable=True)])
    assert [FailedRecord(b"a", "InternalFailure", "oops", 3)] == ledger.give_up()
    assert ledger.done
    assert () == ledger.undelivered()


def test_a_run_that_stopped_part_way_keeps_the_rest_pending_in_order() -> None:
    """Outcomes for the first records only: the others were not sent and stay, in order."""
    ledger = Ledger([b"a", b"b", b"c", b"d"])
    assert (1, []) == ledger.settle([None, THROTTLED])
    assert [1, 2, 3] == ledger.pending
    assert [1, 1, 0, 0] == ledger.attempts
    assert (b"b", b"c", b"d") == ledger.undelivered()
    assert ["ThrottlingException"] == ledger.codes()  # only sent records have a last error


def test_carrying_attaches_what_was_not_delivered() -> None:
    """A Stopped keeps its error's type and cause; the records and the result are attached."""
    cause = ValueError("denied")
    with (
        pytest.raises(AccessDeniedError) as info,
        carrying(lambda: (b"x", b"y"), lambda: ForwardResult(sent=3)),
    ):
        raise Stopped(AccessDeniedError("no", error_code="AccessDenied"), cause)
    assert (b"x", b"y") == info.value.undelivered
    assert 3 == info.value.result.sent  # type: ignore[union-attr]
    assert info.value.__cause__ is cause


def test_carrying_turns_anything_else_into_forward_aborted() -> None:
    """An unexpected error becomes a ForwardAbortedError, chained, with the records."""
    with (
        pytest.raises(ForwardAbortedError, match="unexpected KeyError") as info,
        carrying(lambda: (b"x",), ForwardResult),
    ):
        raise KeyError("boom")
    assert (b"x",) == info.value.undelivered
    assert isinstance(info.value.__cause__, KeyError)


def test_carrying_does_nothing_when_the_block_ends() -> None:
    """No error: neither callable is called."""

    def never() -> tuple[bytes, ...]:
        raise AssertionError

    with carrying(never, never):  # type: ignore[arg-type]
        pass


@pytest.mark.parametrize(
    ("status", "kind", "problem"),
    [
        ("ACTIVE", "DirectPut", None),
        ("CREATING", "DirectPut", "is CREATING, not ACTIVE"),
        ("ACTIVE", "KinesisStreamAsSource", "has source KinesisStreamAsSource"),
    ],
)
def test_not_ready(status: str, kind: str, problem: str | None) -> None:
    """Only an ACTIVE Direct PUT stream takes records; otherwise the error says why."""
    error = not_ready(DeliveryStreamInfo("events", "arn", status, kind))
    if problem is None:
        assert error is None
    else:
        assert isinstance(error, StreamNotReadyError)
        assert problem in str(error)
        assert error.error_code in (status, kind)
