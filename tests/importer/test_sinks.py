"""PostHogSink against a local capture API (posthog-python's real HTTP client), JsonLinesSink."""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import pytest

from streambridge import (
    ConfigurationError,
    ImporterSettings,
    JsonLinesSink,
    KinesisImporter,
    PostHogAuthError,
    PostHogEvent,
    PostHogRefusedError,
    PostHogSink,
    PostHogUnavailableError,
    RetryPolicy,
    SkippedRecord,
)
from streambridge.importer.events import event_uuid
from streambridge.testing import FakeClock, LocalAWS, LocalPostHog, local_posthog

T0 = datetime(2026, 12, 1, tzinfo=timezone.utc)


def events(count: int, **properties: Any) -> list[PostHogEvent]:
    """``count`` events with distinct uuids."""
    return [
        PostHogEvent(
            event="click",
            distinct_id=f"u{n % 3}",
            properties={"n": n, **properties},
            timestamp=T0,
            uuid=event_uuid("s", "shard", str(n)),
        )
        for n in range(count)
    ]


@pytest.fixture(name="posthog")
def _posthog() -> Iterator[LocalPostHog]:
    with local_posthog() as stand_in:
        yield stand_in


def sink_for(posthog: LocalPostHog, **options: Any) -> tuple[PostHogSink, FakeClock]:
    """A sink on the stand-in with a fake clock (its waits take no real time)."""
    clock = FakeClock()
    options.setdefault("retry", RetryPolicy(max_attempts=100, max_elapsed=60.0))
    sink = PostHogSink(
        api_key="phc_secret", host=posthog.url, sleep=clock.sleep, clock=clock, **options
    )
    return sink, clock


def test_delivers_every_event_and_returns_nothing_refused(posthog: LocalPostHog) -> None:
    """All events reach /batch/ with the key, gzip-compressed, uuids and timestamps kept."""
    sink, _ = sink_for(posthog)
    assert [] == sink(events(250))
    assert 250 == len(posthog.events)
    assert {"phc_secret"} == set(posthog.api_keys)
    first = posthog.events[0]
    assert ("click", "u0", event_uuid("s", "shard", "0")) == (
        first["event"],
        first["distinct_id"],
        first["uuid"],
    )
    assert T0 == datetime.fromisoformat(first["timestamp"])


def test_the_key_never_shows() -> None:
    """The API key is not in the sink's repr."""
    sink = PostHogSink(api_key="phc_secret", host="http://127.0.0.1:9")
    assert "phc_secret" not in repr(sink)


def test_an_empty_key_is_a_configuration_error() -> None:
    """No key, no sink."""
    with pytest.raises(ConfigurationError, match="API key"):
        PostHogSink(api_key=" ")


def test_an_outage_is_waited_out(posthog: LocalPostHog) -> None:
    """503, 502, 429 and 408 are retried with growing waits; then every event arrives once."""
    sink, clock = sink_for(posthog)
    posthog.answer(503, 502, 429, 408, 500)
    assert [] == sink(events(10))
    assert 10 == len(posthog.events)
    assert 6 == posthog.requests
    assert 5 == len(clock.slept)


def test_a_long_outage_raises_after_the_budget(posthog: LocalPostHog) -> None:
    """PostHog failing for longer than the budget: PostHogUnavailableError, nothing accepted."""
    sink, clock = sink_for(posthog, retry=RetryPolicy(max_attempts=1000, max_elapsed=20.0))
    posthog.status = 503
    with pytest.raises(PostHogUnavailableError, match="did not accept 5 event"):
        sink(events(5))
    assert [] == posthog.events
    assert clock.now <= 20.0


def test_unreachable_posthog_is_retried_then_unavailable() -> None:
    """A refused connection counts as an outage."""
    clock = FakeClock()
    sink = PostHogSink(
        api_key="k",
        host="http://127.0.0.1:9",
        retry=RetryPolicy(max_attempts=3),
        sleep=clock.sleep,
        clock=clock,
    )
    with pytest.raises(PostHogUnavailableError, match="ConnectionError"):
        sink(events(1))
    assert 3 == sink.requests


@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_key_stops_at_once(posthog: LocalPostHog, status: int) -> None:
    """401/403: a PostHogAuthError (a FatalSinkError) after one request; no retry."""
    sink, _ = sink_for(posthog)
    posthog.status = status
    with pytest.raises(PostHogAuthError, match=f"HTTP {status}") as info:
        sink(events(3))
    assert isinstance(info.value, PermissionError)
    assert "phc_secret" not in str(info.value)
    assert 1 == posthog.requests


def test_another_client_error_stops_too(posthog: LocalPostHog) -> None:
    """A 404 (a wrong host path) is not retried."""
    sink, _ = sink_for(posthog)
    posthog.status = 404
    with pytest.raises(PostHogRefusedError, match="HTTP 404"):
        sink(events(3))


def test_413_splits_the_request(posthog: LocalPostHog) -> None:
    """Too large a request is split in halves until PostHog takes each part."""
    sink, _ = sink_for(posthog)
    posthog.max_batch = 10
    assert [] == sink(events(95))
    assert list(range(95)) == sorted(e["properties"]["n"] for e in posthog.events)


def test_400_isolates_the_event_posthog_refuses(posthog: LocalPostHog) -> None:
    """One invalid event: it alone comes back as a refusal; the others are delivered."""
    sink, _ = sink_for(posthog)
    posthog.refuse = lambda event: event["properties"]["n"] == 17
    batch = events(40)
    (refusal,) = sink(batch)
    assert batch[17] is refusal.event
    assert "HTTP 400" in refusal.reason
    assert 39 == len(posthog.events)


def test_requests_stay_under_the_size_limit(posthog: LocalPostHog) -> None:
    """Events are grouped into requests of at most max_request_bytes of JSON."""
    sink, _ = sink_for(posthog, max_request_bytes=2_000)
    assert [] == sink(events(50, pad="x" * 100))
    assert 50 == len(posthog.events)
    assert posthog.requests >= 4


def test_an_oversize_or_unencodable_event_is_refused_without_sending(
    posthog: LocalPostHog,
) -> None:
    """An event over 900 KiB, or one a strict UTF-8 encoder refuses, is refused up front."""
    sink, _ = sink_for(posthog)
    big = events(1, pad="x" * 1_000_000)[0]
    bad = events(1, name="\ud800")[0]
    refusals = sink([big, *events(2), bad])
    assert [big, bad] == [r.event for r in refusals]
    assert "over PostHog's limit" in refusals[0].reason
    assert "lone surrogate" in refusals[1].reason
    assert 2 == len(posthog.events)


def test_abandon_ends_a_call_waiting_out_an_outage(posthog: LocalPostHog) -> None:
    """abandon() from another thread (a signal handler) ends the wait at once."""
    sink = PostHogSink(
        api_key="k", host=posthog.url, retry=RetryPolicy(max_attempts=1000, max_elapsed=600)
    )
    posthog.status = 503
    threading.Timer(0.3, sink.abandon).start()
    started = time.monotonic()
    with pytest.raises(PostHogUnavailableError, match="abandoned"):
        sink(events(2))
    assert time.monotonic() - started < 20  # not the 600 s budget
    with pytest.raises(PostHogUnavailableError, match="abandoned"):
        sink(events(1))


def test_json_lines_sink_writes_strict_utf8_and_refuses_the_rest() -> None:
    """Good events become lines; an event with a lone surrogate is refused, not a crash."""
    stream = io.StringIO()
    bad = events(1, name="\udfff")[0]
    refusals = JsonLinesSink(stream)([*events(2), bad])
    assert [bad] == [r.event for r in refusals]
    lines = stream.getvalue().encode("utf-8").splitlines()
    assert [0, 1] == [json.loads(line)["properties"]["n"] for line in lines]


# --------------------------------------------------------------------------- with the importer

STREAM = "clicks"
SETTINGS = ImporterSettings(
    stream_name=STREAM,
    event_key="name",
    additional_property_mappings="n:n,user:distinct_id",
    start_position="TRIM_HORIZON",
    records_per_call=100,
)


def put(aws: LocalAWS, count: int, shards: int = 2) -> None:
    """``count`` good records over ``shards`` shards."""
    aws.create_stream(STREAM, shards=shards)
    aws.put_records(STREAM, [{"name": "click", "n": n, "user": f"u{n % 9}"} for n in range(count)])


@pytest.mark.integration
@pytest.mark.parametrize("in_flight", [1, None], ids=["one-call", "calls-in-flight"])
def test_importer_loses_nothing_through_an_outage(
    aws: LocalAWS, posthog: LocalPostHog, tmp_path: Any, open_store: Any, in_flight: int | None
) -> None:
    """PostHog down for longer than the sink's budget, twice: every event arrives, no gaps.

    With one sink call at a time the seven 503s fail the first two calls whole. With calls in
    flight (the default) the 503s land on whichever calls are in flight, so how many calls fail
    whole depends on timing; what must not depend on it is that nothing is lost.
    """
    put(aws, 2_000)
    clock = FakeClock()
    sink = PostHogSink(
        api_key="k",
        host=posthog.url,
        retry=RetryPolicy(max_attempts=3),
        sleep=clock.sleep,
        clock=clock,
    )
    store = open_store(tmp_path / "state.db")
    importer = KinesisImporter(
        aws.client("kinesis"),
        SETTINGS,
        sink=sink,
        checkpoints=store,
        clock=clock,
        sleep=clock.sleep,
        sink_calls_in_flight=in_flight,
    )
    posthog.answer(*[503] * 7)  # one call at a time: the first two fail whole (3 attempts each)
    totals = importer.run(until_caught_up=True)
    assert (2 if in_flight == 1 else 0) <= totals.sink_failures
    assert 0 == totals.undelivered
    assert set(range(2_000)) == {e["properties"]["n"] for e in posthog.events}
    assert all(c.sequence_number for c in store.load(STREAM).values())


@pytest.mark.integration
def test_importer_stops_on_a_refused_key_and_keeps_its_place(
    aws: LocalAWS, posthog: LocalPostHog, tmp_path: Any, open_store: Any
) -> None:
    """A 401 stops the importer with PostHogAuthError; nothing is checkpointed; a fix resumes."""
    put(aws, 300, shards=1)
    store = open_store(tmp_path / "state.db")
    posthog.status = 401
    importer = KinesisImporter(
        aws.client("kinesis"),
        SETTINGS,
        sink=PostHogSink(api_key="old", host=posthog.url),
        checkpoints=store,
    )
    with pytest.raises(PostHogAuthError):
        importer.run(until_caught_up=True)
    assert importer.undelivered in (100, 200, 300)  # the pages held (in flight) at the 401
    assert None is store.load(STREAM)["shardId-000000000000"].sequence_number
    posthog.status = 200
    again = KinesisImporter(
        aws.client("kinesis"),
        SETTINGS,
        sink=PostHogSink(api_key="new", host=posthog.url),
        checkpoints=store,
        sleep=lambda _: None,
    )
    again.run(until_caught_up=True)
    assert set(range(300)) == {e["properties"]["n"] for e in posthog.events}


@pytest.mark.integration
def test_refused_events_become_skipped_records(aws: LocalAWS, posthog: LocalPostHog) -> None:
    """An event PostHog refuses (400) is a skipped record with the reason; the rest moves on."""
    put(aws, 50, shards=1)
    posthog.refuse = lambda event: event["properties"]["n"] == 7
    skipped: list[SkippedRecord] = []
    importer = KinesisImporter(
        aws.client("kinesis"),
        SETTINGS,
        sink=PostHogSink(api_key="k", host=posthog.url),
        on_skip=skipped.append,
    )
    result = importer.poll()
    (skip,) = skipped
    assert skip in result.skipped
    assert skip.reason.startswith("refused by the sink: PostHog refused it (HTTP 400")
    assert 7 == json.loads(skip.data)["n"]
    assert 49 == result.event_count == len(posthog.events)
    assert importer.shards["shardId-000000000000"].sequence_number is not None
