"""FirehoseForwarder under injected faults, through botocore's real parser, against moto."""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterator
from typing import Any

import attrs
import pytest
from botocore.exceptions import NoCredentialsError

from streambridge import (
    AccessDeniedError,
    DeliveryError,
    FailedRecord,
    FirehoseForwarder,
    ForwarderSettings,
    RetryPolicy,
)
from streambridge.forwarder.filtering import filter_batch
from streambridge.testing import (
    AcceptAll,
    ErrorFault,
    Fault,
    FaultInjector,
    LocalAWS,
    PartialFailure,
    ResponseFault,
    access_denied,
    connection_error,
    service_unavailable,
    throttling,
)
from tests.test_fuzz import answered_by

pytestmark = pytest.mark.integration

STREAM = "events"
PER_EVENT = ForwarderSettings(delivery_stream_name=STREAM, send_as_batch=False)
SINGLE = ForwarderSettings(delivery_stream_name=STREAM)


@attrs.define
class Harness:
    """A forwarder on moto with faults injected into its client and a fake clock."""

    aws: LocalAWS
    forwarder: FirehoseForwarder
    faults: FaultInjector
    sleeps: list[float]


@pytest.fixture(name="make")
def _make(aws: LocalAWS) -> Iterator[Any]:
    aws.create_delivery_stream(STREAM)
    made: list[FaultInjector] = []

    def make(settings: ForwarderSettings = PER_EVENT, **options: Any) -> Harness:
        sleeps: list[float] = []
        now = [0.0]

        def sleep(seconds: float) -> None:
            sleeps.append(seconds)
            now[0] += seconds

        client = aws.client("firehose")
        faults = FaultInjector(client)
        made.append(faults)
        options.setdefault("random", lambda: 1.0)
        options.setdefault("max_in_flight", 1)  # queued faults meet the calls in order
        fwd = FirehoseForwarder(client, settings, sleep=sleep, clock=lambda: now[0], **options)
        return Harness(aws, fwd, faults, sleeps)

    yield make
    for faults in made:
        faults.close()


def delivered_events(aws: LocalAWS) -> Counter[str]:
    """Each delivered event, by its JSON text (to count duplicates)."""
    return Counter(
        json.dumps(e, sort_keys=True) for r in aws.delivered(STREAM) for e in r["events"]
    )


def expected_events(batch: dict[str, Any]) -> Counter[str]:
    """The events of a sample that survive the default settings."""
    out = filter_batch(batch, PER_EVENT)
    assert out is not None
    return Counter(json.dumps(e, sort_keys=True) for e in out["events"])


def test_fifty_throttles_then_success(make: Any, ios: dict[str, Any]) -> None:
    """50 consecutive ServiceUnavailable answers, then success: delivered once, backoff capped."""
    h = make(retry=RetryPolicy(max_attempts=60, base_delay=0.1, max_delay=5.0, max_elapsed=10_000))
    h.faults.repeat("PutRecordBatch", service_unavailable(), 50)
    result = h.forwarder.forward(ios)
    assert (13, 51, 50) == (result.sent, result.api_calls, result.retries)
    assert result.ok
    assert expected_events(ios) == delivered_events(h.aws)
    assert [min(5.0, 0.1 * 2**n) for n in range(50)] == pytest.approx(h.sleeps)
    assert 0 == h.faults.pending("PutRecordBatch")


@pytest.mark.parametrize(
    "fault",
    [
        throttling(),
        throttling("ThrottlingException"),
        connection_error(),
        ErrorFault(503, "SomethingTransient"),
        ErrorFault(500, "InternalFailure"),
    ],
)
def test_transient_call_errors_are_retried(make: Any, ios: dict[str, Any], fault: Any) -> None:
    """Throttling, connection errors and 5xx are retried until success."""
    h = make()
    h.faults.repeat("PutRecordBatch", fault, 3)
    result = h.forwarder.forward(ios)
    assert (13, 3) == (result.sent, result.retries)
    assert expected_events(ios) == delivered_events(h.aws)


def test_thirty_percent_partial_failures_deliver_each_record_once(
    make: Any, samples: list[dict[str, Any]]
) -> None:
    """30% of entries fail on every call; only failed entries are re-sent; each arrives once."""
    h = make(retry=RetryPolicy(max_attempts=40, max_elapsed=10_000), max_batch_records=50)
    h.faults.always("PutRecordBatch", PartialFailure(fraction=0.3, seed=7))
    batches = samples * 4
    result = h.forwarder.forward_many(batches)
    expected: Counter[str] = Counter()
    for batch in batches:
        expected += expected_events(batch)
    got = delivered_events(h.aws)
    assert expected == got  # exactly once: no loss, no duplicate
    assert 212 == result.sent
    assert () == result.failed
    assert result.retries >= 5
    assert result.api_calls == result.retries + 5  # 212 records / 50 per call = 5 first calls


def test_retries_exhausted_returns_every_record(
    make: Any, ios: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    """Throttled forever: every record comes back failed, on_failure sees each, one log line."""
    failures: list[FailedRecord] = []
    h = make(retry=RetryPolicy(max_attempts=4), on_failure=failures.append)
    h.faults.always("PutRecordBatch", service_unavailable())
    with caplog.at_level(logging.WARNING, logger="streambridge"):
        result = h.forwarder.forward(ios)
    assert (0, 13, 4, 3) == (result.sent, len(result.failed), result.api_calls, result.retries)
    assert list(result.failed) == failures
    assert {("ServiceUnavailableException", 4)} == {
        (f.error_code, f.attempts) for f in result.failed
    }
    limit_lines = [r for r in caplog.records if "Retry Limit Exceeded" in r.getMessage()]
    assert 1 == len(limit_lines)
    assert "13 of 13" in limit_lines[0].getMessage()
    assert Counter() == delivered_events(h.aws)


def test_time_budget_stops_retries(make: Any, ios: dict[str, Any]) -> None:
    """No wait may end past max_elapsed, whatever the attempt budget."""
    h = make(retry=RetryPolicy(max_attempts=1_000, base_delay=1.0, max_delay=1.0, max_elapsed=5.5))
    h.faults.always("PutRecordBatch", service_unavailable())
    result = h.forwarder.forward(ios)
    assert [1.0] * 5 == h.sleeps
    assert {6} == {f.attempts for f in result.failed}


def test_partial_exhaustion_returns_only_the_failed(make: Any, ios: dict[str, Any]) -> None:
    """With half the entries failing forever, the others are delivered and the rest returned."""
    h = make(retry=RetryPolicy(max_attempts=3))
    h.faults.always("PutRecordBatch", PartialFailure(fraction=0.5, seed=1))
    result = h.forwarder.forward(ios)
    assert 13 == result.sent + len(result.failed)
    got = delivered_events(h.aws)
    failed = Counter(
        json.dumps(json.loads(f.data)["events"][0], sort_keys=True) for f in result.failed
    )
    assert expected_events(ios) == got + failed
    assert not (set(got) & set(failed))


def test_non_retryable_entry_error_fails_at_once(make: Any, ios: dict[str, Any]) -> None:
    """An entry error that is not transient is returned after one attempt; the rest is sent."""
    h = make(settings=ForwarderSettings(delivery_stream_name=STREAM))
    h.faults.add(
        "PutRecordBatch",
        ResponseFault(
            200,
            {
                "FailedPutCount": 1,
                "RequestResponses": [
                    {"ErrorCode": "InvalidArgumentException", "ErrorMessage": "bad"}
                ],
            },
        ),
    )
    result = h.forwarder.forward(ios)
    (failed,) = result.failed
    assert ("InvalidArgumentException", "bad", 1) == (
        failed.error_code,
        failed.error_message,
        failed.attempts,
    )
    assert 0 == result.retries


def test_mismatched_response_is_resent(make: Any, ios: dict[str, Any]) -> None:
    """A response that cannot be matched to the request is treated as a failure of every entry."""
    h = make(settings=ForwarderSettings(delivery_stream_name=STREAM))
    h.faults.add(
        "PutRecordBatch", ResponseFault(200, {"FailedPutCount": 1, "RequestResponses": []})
    )
    result = h.forwarder.forward(ios)
    assert (1, 1) == (result.sent, result.retries)


def test_fatal_error_mid_stream_carries_undelivered(
    make: Any, samples: list[dict[str, Any]]
) -> None:
    """Access denied on the 3rd call: the error carries every record built and not delivered.

    With put_mode="batch" pinned: the default ("auto") falls back to PutRecord instead.
    """
    h = make(max_batch_records=10, put_mode="batch", max_in_flight=1)  # call by call
    h.faults.add(
        "PutRecordBatch",
        PartialFailure(fraction=0.0),
        PartialFailure(fraction=0.0),
        access_denied(),
    )
    read: list[dict[str, Any]] = []

    def batches() -> Iterator[dict[str, Any]]:
        for batch in samples * 3:
            read.append(batch)
            yield batch

    with pytest.raises(AccessDeniedError) as info:
        h.forwarder.forward_many(batches())
    error = info.value
    assert isinstance(error, PermissionError)
    assert "firehose:PutRecordBatch" in str(error)
    assert "put_mode at 'auto'" in str(error)
    # android (13 records) + ios (13) + odd (20) were read: 46 records built; calls 1 and 2
    # delivered records 0-19, call 3 (records 20-29) was denied when record 30 was packed.
    assert 3 == len(read)
    assert error.result is not None
    assert (20, 3) == (error.result.sent, error.result.api_calls)
    delivered = h.aws.delivered(STREAM)
    assert 20 == len(delivered)
    assert 26 == len(error.undelivered)
    expected: Counter[str] = Counter()
    for batch in read:
        expected += expected_events(batch)
    carried = Counter(
        json.dumps(json.loads(r)["events"][0], sort_keys=True) for r in error.undelivered
    )
    assert expected == delivered_events(h.aws) + carried  # nothing lost, nothing twice
    odd_events = [json.loads(r)["events"][0] for r in error.undelivered[6:]]
    assert odd_events == filter_batch(read[2], PER_EVENT)["events"]  # type: ignore[index]  # order kept


def test_fatal_error_in_single_mode_counts_what_was_sent(
    make: Any, samples: list[dict[str, Any]]
) -> None:
    """PutRecord mode: records sent before the fatal one are counted, not returned."""
    h = make(settings=SINGLE, put_mode="single")
    # record 0 goes through, record 1 is throttled, record 2 is denied; 3 and 4 are never tried
    h.faults.add(
        "PutRecord",
        ResponseFault(200, {"RecordId": "r0", "Encrypted": False}),
        service_unavailable(),
        access_denied(),
    )
    with pytest.raises(AccessDeniedError, match="'firehose:PutRecord'") as info:
        h.forwarder.forward_many(samples)
    assert info.value.result is not None
    assert (1, 3) == (info.value.result.sent, info.value.result.api_calls)
    assert 4 == len(info.value.undelivered)
    expected = [filter_batch(b, SINGLE) for b in samples[1:]]
    assert expected == [json.loads(r) for r in info.value.undelivered]


def test_other_fatal_errors(make: Any, ios: dict[str, Any]) -> None:
    """InvalidArgument and KMS errors raise DeliveryError with the AWS code and message."""
    h = make()
    h.faults.add("PutRecordBatch", ErrorFault(400, "InvalidKMSResourceException", "key disabled"))
    with pytest.raises(DeliveryError, match=r"InvalidKMSResourceException.*key disabled") as info:
        h.forwarder.forward(ios)
    assert "InvalidKMSResourceException" == info.value.error_code
    assert 13 == len(info.value.undelivered)


def test_on_failure_that_raises_does_not_lose_records(
    make: Any, ios: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    """A broken on_failure callback is logged; the failures stay in the result."""

    def boom(_: FailedRecord) -> None:
        raise RuntimeError("callback bug")

    h = make(retry=RetryPolicy(max_attempts=1), on_failure=boom)
    h.faults.always("PutRecordBatch", service_unavailable())
    with caplog.at_level(logging.ERROR, logger="streambridge"):
        result = h.forwarder.forward(ios)
    assert 13 == len(result.failed)
    assert any("on_failure raised" in r.getMessage() for r in caplog.records)


def test_check_access_denied_names_the_permission(make: Any) -> None:
    """check() without DescribeDeliveryStream permission says which action to allow."""
    h = make()
    h.faults.add("DescribeDeliveryStream", access_denied())
    with pytest.raises(AccessDeniedError, match="firehose:DescribeDeliveryStream"):
        h.forwarder.check()


def test_flush_fatal_error_carries_the_sessions(make: Any, ios: dict[str, Any]) -> None:
    """A fatal error during flush() carries the held session's record."""
    h = make(settings=attrs.evolve(PER_EVENT, wait_for_complete_batch=True))
    h.forwarder.forward(dict(ios, events=ios["events"][:4]))
    h.faults.add("PutRecordBatch", ErrorFault(400, "ResourceNotFoundException", "gone"))
    with pytest.raises(DeliveryError) as info:
        h.forwarder.flush()
    assert 1 == len(info.value.undelivered)
    assert 4 == len(json.loads(info.value.undelivered[0])["events"])


def test_accept_all_is_a_null_sink(make: Any, samples: list[dict[str, Any]]) -> None:
    """AcceptAll answers success through botocore without storing anything, and counts."""
    sink = AcceptAll()
    h = make(settings=SINGLE, record_delimiter=b"")  # mParticle's framing: sizes as encoded
    h.faults.always("PutRecordBatch", sink)
    result = h.forwarder.forward_many(samples)
    assert (5, 5) == (result.sent, sink.records)
    assert (
        sum(
            len(
                json.dumps(
                    filter_batch(b, SINGLE), separators=(",", ":"), ensure_ascii=False
                ).encode()
            )
            for b in samples
        )
        == sink.data_bytes
    )
    assert Counter() == delivered_events(h.aws)
    single = make(settings=SINGLE, put_mode="single")
    single.faults.always("PutRecord", sink)
    assert 5 == single.forwarder.forward_many(samples).sent
    assert 10 == sink.records
    single.faults.always("DescribeDeliveryStream", sink)
    with pytest.raises(ValueError, match="not DescribeDeliveryStream"):
        single.forwarder.check()


def test_accept_all_counts_every_call_of_a_forwarder_with_calls_in_flight() -> None:
    """Calls answered at once from several threads: no count is lost.

    The counts were read, then added to after decoding the call's records, so calls in flight
    overwrote each other's (a benchmark's byte count varied by 10% from run to run).
    """
    for client, sink in answered_by(AcceptAll()):  # one client, its hook kept for the loop
        check_counts(client, sink)


def check_counts(client: Any, sink: AcceptAll) -> None:
    """Send 20,000 records of several sizes; every record and byte must be counted."""
    forwarder = FirehoseForwarder(client, SINGLE)  # 10 calls in flight: the client's pool
    records = [b"x" * (1_000 + n % 500) for n in range(20_000)]
    result = forwarder.send(records)
    assert result.sent == sink.records == len(records)
    assert sink.data_bytes == sum(map(len, records))


@attrs.frozen
class _NoCredentials(Fault):
    """Raise what botocore raises when it finds no credentials."""

    def respond(self, injector: FaultInjector, operation: str, request: Any) -> Any:
        raise NoCredentialsError


@pytest.mark.parametrize("mode", ["batch", "single"])
def test_non_http_botocore_errors_are_fatal_and_carry_records(
    make: Any, samples: list[dict[str, Any]], mode: str
) -> None:
    """A botocore error without a response (no credentials) raises DeliveryError with every record."""
    h = make(settings=SINGLE, put_mode=mode)
    h.faults.always("PutRecordBatch" if mode == "batch" else "PutRecord", _NoCredentials())
    with pytest.raises(DeliveryError, match="NoCredentialsError") as info:
        h.forwarder.forward_many(samples)
    assert "NoCredentialsError" == info.value.error_code
    assert 5 == len(info.value.undelivered)
    assert isinstance(info.value.__cause__, NoCredentialsError)
