"""Calls in flight: overlapped at real latency, every guarantee kept, the limit adaptive."""

from __future__ import annotations

import base64
import functools
import json
import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import attrs
import pytest

from streambridge import (
    AccessDeniedError,
    FirehoseForwarder,
    ForwardAbortedError,
    ForwarderSettings,
)
from streambridge.forwarder import Settled
from streambridge.forwarder.delivery import GROW_ABOVE, INITIAL, ConcurrencyLimit
from streambridge.testing import (
    AcceptAll,
    FaultInjector,
    Latency,
    LocalAWS,
    PartialFailure,
    access_denied,
)

PER_EVENT = ForwarderSettings(delivery_stream_name="events", send_as_batch=False)


def test_the_limit_grows_on_slow_calls_and_halves_on_backpressure() -> None:
    """Additive increase for calls that waited on the network, halving on throttling."""
    assert 2 == ConcurrencyLimit(2).value  # never starts past the maximum
    limit = ConcurrencyLimit(8)
    assert INITIAL == limit.value
    limit.record(GROW_ABOVE / 2, backpressure=False)
    assert INITIAL == limit.value  # fast calls: no more in flight
    for _ in range(6):
        limit.record(GROW_ABOVE, backpressure=False)
    assert 8 == limit.value  # never past the maximum
    limit.record(1.0, backpressure=True)
    assert 4 == limit.value
    limit.record(1.0, backpressure=True)
    assert 2 == limit.value
    limit.record(1.0, backpressure=True)
    limit.record(1.0, backpressure=True)
    assert 1 == limit.value
    with pytest.raises(ValueError, match="at least 1"):
        ConcurrencyLimit(0)


def numbered(count: int) -> Iterator[dict[str, Any]]:
    """Batches of one custom event each, numbered."""
    for n in range(count):
        yield {"message_id": f"m{n}", "events": [{"event_type": "custom_event", "data": {"n": n}}]}


def numbers(records: Any) -> Counter[int]:
    """How often each numbered event appears in ``records``."""
    return Counter(json.loads(r)["events"][0]["data"]["n"] for r in records)


def null_client(aws: LocalAWS) -> Any:
    """A Firehose client on the local AWS (AcceptAll answers its puts)."""
    return aws.client("firehose")


def test_calls_overlap_at_network_latency(aws: LocalAWS) -> None:
    """At 20 ms a call, several calls are in flight; every record is accounted for once."""
    client = null_client(aws)
    sink = AcceptAll()
    forwarder = FirehoseForwarder(client, PER_EVENT, max_batch_records=10)
    with Latency(client, 0.02) as latency, FaultInjector(client) as faults:
        faults.always("PutRecordBatch", sink)
        result = forwarder.forward_many(numbered(400))
    assert result.ok
    assert (400, 400) == (result.sent, sink.records)
    assert 40 == result.api_calls
    assert latency.most_in_flight > 1
    assert forwarder._sender.limit.value > 1


@pytest.mark.integration
def test_partial_failures_under_concurrency_lose_nothing(aws: LocalAWS) -> None:
    """Throttled entries retried across overlapping calls: each record delivered."""
    aws.create_delivery_stream("events")
    client = aws.client("firehose")
    forwarder = FirehoseForwarder(client, PER_EVENT, max_batch_records=20, sleep=lambda _: None)
    with Latency(client, 0.015), FaultInjector(client) as faults:
        faults.always("PutRecordBatch", PartialFailure(fraction=0.3, seed=4))
        result = forwarder.forward_many(numbered(300))
    assert result.ok, result.failed
    assert 300 == result.sent
    assert result.retries > 0
    delivered = Counter(d["events"][0]["data"]["n"] for d in aws.delivered("events"))
    assert set(range(300)) == set(delivered)  # nothing lost (a duplicate would be acceptable)


@pytest.mark.integration
def test_on_failure_is_called_from_the_forwarders_thread(aws: LocalAWS) -> None:
    """Records that fail for good in other threads' calls reach on_failure in the caller's."""
    aws.create_delivery_stream("events")
    client = aws.client("firehose")
    threads: set[str] = set()
    forwarder = FirehoseForwarder(
        client,
        PER_EVENT,
        max_batch_records=10,
        on_failure=lambda _: threads.add(threading.current_thread().name),
    )
    with Latency(client, 0.015) as latency, FaultInjector(client) as faults:
        refuse = PartialFailure(fraction=0.2, error_code="InvalidArgumentException", seed=1)
        faults.always("PutRecordBatch", refuse)
        result = forwarder.forward_many(numbered(200))
    assert latency.most_in_flight > 1
    assert result.failed
    assert 200 == result.sent + len(result.failed)
    assert {threading.current_thread().name} == threads


def test_a_fatal_error_in_flight_carries_every_record_not_delivered(aws: LocalAWS) -> None:
    """Denied on one of several calls in flight: the rest finish; nothing lost, nothing twice."""
    client = null_client(aws)
    sink = AcceptAll()
    forwarder = FirehoseForwarder(client, PER_EVENT, put_mode="batch", max_batch_records=10)
    with Latency(client, 0.02), FaultInjector(client, keep_requests=True) as faults:
        faults.add("PutRecordBatch", *([sink] * 8), access_denied())
        faults.always("PutRecordBatch", sink)
        with pytest.raises(AccessDeniedError) as info:
            forwarder.forward_many(numbered(500))
        sent = faults.sent_records()
    error = info.value
    assert error.result is not None
    denied_call = [p for op, p in faults.requests if op == "PutRecordBatch"][8]
    denied = numbers(base64.b64decode(r["Data"]) for r in denied_call["Records"])
    accepted = numbers(sent) - denied
    carried = numbers(error.undelivered)
    assert 10 == sum(denied.values())
    assert error.result.sent == sum(accepted.values())
    assert set(accepted.values()) == {1}  # no record accepted twice
    assert set(denied) <= set(carried)  # the denied call's records are carried
    assert not set(accepted) & set(carried)  # and nothing is both delivered and carried
    read = set(accepted) | set(carried)
    assert set(range(len(read))) == read  # nothing lost in between


def test_an_input_that_raises_waits_for_the_calls_in_flight(aws: LocalAWS) -> None:
    """The iterable fails while calls are in flight: they finish, the rest is carried."""
    client = null_client(aws)
    sink = AcceptAll()
    forwarder = FirehoseForwarder(client, PER_EVENT, max_batch_records=10)

    def batches() -> Iterator[dict[str, Any]]:
        yield from numbered(205)
        raise OSError("disk gone")

    with Latency(client, 0.02), FaultInjector(client) as faults:
        faults.always("PutRecordBatch", sink)
        with pytest.raises(ForwardAbortedError) as info:
            forwarder.forward_many(batches())
    error = info.value
    assert isinstance(error.__cause__, OSError)
    assert error.result is not None
    assert 200 == error.result.sent == sink.records  # every call in flight finished
    assert {200, 201, 202, 203, 204} == set(numbers(error.undelivered))


def test_settled_is_called_once_everything_before_it_is_delivered_or_handed_back(
    aws: LocalAWS,
) -> None:
    """At each Settled marker told, every event before it is in S3 or was handed to on_failure.

    Calls in flight at 15 ms, a fifth of entries refused for good; the last marker is told.
    """
    aws.create_delivery_stream("events")
    client = null_client(aws)
    handed: list[bytes] = []
    checks: list[tuple[int, bool]] = []
    forwarder = FirehoseForwarder(
        client, PER_EVENT, on_failure=lambda f: handed.append(f.data), max_batch_records=40
    )

    def check(upto: int) -> None:
        settled = numbers(handed) + Counter(
            n["events"][0]["data"]["n"] for n in aws.delivered("events")
        )
        checks.append((upto, set(range(upto)) <= set(settled)))

    def batches() -> Iterator[Any]:
        for n, batch in enumerate(numbered(300)):
            if n and n % 100 == 0:
                yield Settled(functools.partial(check, n))
            yield batch

    refuse = PartialFailure(fraction=0.2, error_code="InvalidArgumentException", seed=3)
    with Latency(client, 0.015), FaultInjector(client) as faults:
        faults.always("PutRecordBatch", refuse)
        result = forwarder.forward_many(batches())
    assert checks
    assert all(ok for _, ok in checks), checks
    assert 200 == checks[-1][0]
    assert 300 == result.batches == result.sent + len(result.failed)
    sessions = attrs.evolve(PER_EVENT, wait_for_complete_batch=True)
    with pytest.raises(ForwardAbortedError, match="Wait for Complete Batch"):
        FirehoseForwarder(client, sessions).forward_many([Settled(lambda: None)])


def test_settled_markers_follow_the_calls_without_waiting_for_them(aws: LocalAWS) -> None:
    """A marker after every batch: no call is sent early or waited for because of them.

    Each marker told is safe (every record before it confirmed by Firehose) and close: at
    most the calls in flight (2 of 50 records) are confirmed past it. Before, each marker
    sent what was packed and waited for every call: 3,000 markers made 3,000 calls.
    """
    client = null_client(aws)
    confirmed: set[int] = set()
    told: list[tuple[int, set[int]]] = []

    def before(params: Any, context: Any, **_: Any) -> None:
        body = json.loads(params["body"])
        context["numbers"] = list(numbers(base64.b64decode(r["Data"]) for r in body["Records"]))

    def after(context: Any, parsed: Any, **_: Any) -> None:
        if not parsed.get("FailedPutCount", 1):
            confirmed.update(context.get("numbers", ()))

    client.meta.events.register("before-call.firehose.PutRecordBatch", before)
    client.meta.events.register("after-call.firehose.PutRecordBatch", after)
    forwarder = FirehoseForwarder(client, PER_EVENT, max_in_flight=2, max_batch_records=50)

    def batches() -> Iterator[Any]:
        for n, batch in enumerate(numbered(3000)):
            yield batch
            yield Settled(functools.partial(lambda k: told.append((k, set(confirmed))), n + 1))

    with Latency(client, 0.01), FaultInjector(client) as faults:
        faults.always("PutRecordBatch", AcceptAll())
        result = forwarder.forward_many(batches())
    assert 60 == result.api_calls  # full calls only
    assert len(told) > 10  # told as calls end, not once at the end
    assert 3000 == told[-1][0]
    for upto, seen in told:
        assert set(range(upto)) <= seen
        assert max(seen, default=-1) + 1 - upto <= 2 * 50
