"""KinesisImporter through real boto3 clients over HTTP to moto's server on 127.0.0.1."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import attrs
import pytest
from botocore.exceptions import NoCredentialsError

from streambridge import (
    AccessDeniedError,
    DeliveryError,
    ImporterSettings,
    KinesisImporter,
    PostHogEvent,
    SkippedRecord,
    SQLiteCheckpointStore,
    StreamNotFoundError,
)
from streambridge.importer.shards import SKEW_MARGIN
from streambridge.testing import (
    ErrorFault,
    Fault,
    FaultInjector,
    LocalAWS,
    ResponseFault,
    access_denied,
    connection_error,
)

pytestmark = pytest.mark.integration

STREAM = "events"
SETTINGS = ImporterSettings(
    stream_name=STREAM,
    event_key="properties.eventName",
    additional_property_mappings="properties.userId:distinct_id,properties.n:n",
    start_position="TRIM_HORIZON",
)


def record(n: int, name: str | None = None) -> bytes:
    """One PostHog-app-style record."""
    return json.dumps(
        {"properties": {"eventName": name or f"event-{n}", "userId": f"user-{n % 7}", "n": n}}
    ).encode()


def put(aws: LocalAWS, items: Sequence[bytes], key: str | None = None) -> None:
    """Put records, spread over shards by partition key."""
    aws.put_records(STREAM, items, key=key)


@attrs.define
class Harness:
    """An importer on moto with a fake clock, a recording sink and injected faults."""

    aws: LocalAWS
    importer: KinesisImporter
    faults: FaultInjector
    batches: list[list[PostHogEvent]]
    clock: list[float]

    @property
    def events(self) -> list[PostHogEvent]:
        """Every event the sink accepted."""
        return [e for batch in self.batches for e in batch]

    def advance(self, seconds: float) -> None:
        """Move the fake clock."""
        self.clock[0] += seconds

    def ns(self) -> list[int]:
        """The `n` property of every accepted event, sorted."""
        return sorted(int(e.properties["n"]) for e in self.events)


@pytest.fixture(name="make")
def _make(aws: LocalAWS) -> Iterator[Any]:
    made: list[FaultInjector] = []

    def make(
        settings: ImporterSettings = SETTINGS, shards: int | None = 4, **options: Any
    ) -> Harness:
        if shards:
            aws.client("kinesis").create_stream(StreamName=STREAM, ShardCount=shards)
        clock = [0.0]
        batches: list[list[PostHogEvent]] = []
        client = aws.client("kinesis")
        faults = FaultInjector(client, keep_requests=True)
        made.append(faults)

        def sleep(seconds: float) -> None:
            clock[0] += seconds

        options.setdefault("sink", lambda events: batches.append(list(events)))
        options.setdefault("max_in_flight", 1)  # queued faults meet the shards in order
        importer = KinesisImporter(
            client, settings, clock=lambda: clock[0], sleep=sleep, random=lambda: 1.0, **options
        )
        return Harness(aws, importer, faults, batches, clock)

    yield make
    for faults in made:
        faults.close()


def test_trim_horizon_imports_every_record_once(make: Any) -> None:
    """400 records over 4 shards: each imported once, one sink call per shard and poll."""
    h = make()
    put(h.aws, [record(n) for n in range(400)])
    totals = h.importer.run(until_caught_up=True, max_polls=20)
    assert "caught_up" == totals.stopped_because
    assert list(range(400)) == h.ns()
    assert 400 == len({e.uuid for e in h.events})
    assert all(h.batches)  # never an empty call
    assert 400 == totals.events == totals.records
    event = next(e for e in h.events if e.properties["n"] == 8)
    assert ("event-8", "user-1", {"n": 8}) == (
        event.event,
        event.distinct_id,
        dict(event.properties),
    )
    assert event.timestamp.tzinfo is not None


def test_latest_skips_history_then_follows(make: Any) -> None:
    """LATEST ignores what is already there and imports what arrives after."""
    h = make(attrs.evolve(SETTINGS, start_position="LATEST"))
    put(h.aws, [record(n) for n in range(10)])
    assert 0 == h.importer.poll().event_count
    put(h.aws, [record(n) for n in range(100, 105)])
    h.advance(2)
    before = len(h.batches)
    result = h.importer.poll()
    assert 5 == result.event_count
    assert () == result.events  # with a sink, the events are the sink's, not held in results
    polled = [e for batch in h.batches[before:] for e in batch]
    assert [100, 101, 102, 103, 104] == sorted(int(e.properties["n"]) for e in polled)


def test_at_timestamp(make: Any) -> None:
    """A datetime start imports what arrived from that time on."""
    h = make(shards=2, settings=SETTINGS)
    put(h.aws, [record(n) for n in range(5)])
    time.sleep(0.3)
    start = datetime.now(timezone.utc)
    time.sleep(0.3)
    put(h.aws, [record(n) for n in range(50, 55)])
    importer = KinesisImporter(
        h.aws.client("kinesis"), attrs.evolve(SETTINGS, start_position=start)
    )
    assert [50, 51, 52, 53, 54] == sorted(int(e.properties["n"]) for e in importer.poll().events)


def test_sqlite_checkpoints_survive_a_new_importer(
    make: Any, tmp_path: Path, open_store: Any
) -> None:
    """A second importer on the same SQLite file goes on where the first stopped: no gap, no dup."""
    db = tmp_path / "state.db"
    h = make(checkpoints=open_store(db))
    put(h.aws, [record(n) for n in range(100)])
    h.importer.poll()
    first = h.ns()
    assert list(range(100)) == first
    put(h.aws, [record(n) for n in range(100, 130)])
    second: list[PostHogEvent] = []
    with SQLiteCheckpointStore(db) as store:
        again = KinesisImporter(
            h.aws.client("kinesis"), SETTINGS, sink=second.extend, checkpoints=store
        )
        again.poll()
    assert list(range(100, 130)) == sorted(int(e.properties["n"]) for e in second)


def test_latest_restart_before_any_record_leaves_no_gap(
    make: Any, tmp_path: Path, open_store: Any
) -> None:
    """Started at LATEST, stopped before a record came: a restart resumes at the saved start.

    The start is saved SKEW_MARGIN before this machine's "now"; the importer's clock is set so
    that the saved start falls after the records put before it (as when clocks agree).
    """
    db = tmp_path / "state.db"
    settings = attrs.evolve(SETTINGS, start_position="LATEST")
    put_before = datetime.now(timezone.utc)
    put_records_before_start = [record(n) for n in range(5)]
    h = make(settings, checkpoints=open_store(db))
    put(h.aws, put_records_before_start)
    time.sleep(0.2)
    began = datetime.now(timezone.utc)
    h.importer._now = lambda: began + SKEW_MARGIN
    assert () == h.importer.poll().events
    saved = open_store(db).load(STREAM)["shardId-000000000000"]
    assert began.isoformat() == saved.start
    assert saved.sequence_number is None
    assert put_before < began
    time.sleep(0.2)
    put(h.aws, [record(n) for n in range(10, 13)])  # while "down"
    later: list[PostHogEvent] = []
    spy = KinesisImporter(
        h.aws.client("kinesis"), settings, sink=later.extend, checkpoints=open_store(db)
    )
    with FaultInjector(spy.client, keep_requests=True) as calls:
        spy.poll()
    assert [10, 11, 12] == sorted(int(e.properties["n"]) for e in later)
    iterators = [p for op, p in calls.requests if op == "GetShardIterator"]
    assert {"AT_TIMESTAMP"} == {p["ShardIteratorType"] for p in iterators}  # never LATEST again


def test_sink_failure_leaves_the_checkpoint_and_records_come_again(make: Any) -> None:
    """A sink that raises keeps the checkpoint; the same events (same uuids) come next time."""
    accepted: list[PostHogEvent] = []
    failures = [1]

    def sink(events: Sequence[PostHogEvent]) -> None:
        if failures[0]:
            failures[0] -= 1
            raise ConnectionError("PostHog is down")
        accepted.extend(events)

    h = make(shards=1, sink=sink)
    put(h.aws, [record(n) for n in range(20)])
    first = h.importer.poll()
    assert (0, 1) == (len(first.events), len(first.sink_failures))
    assert "PostHog is down" in first.sink_failures[0].error
    assert h.importer.shards["shardId-000000000000"].sequence_number is None
    h.advance(60)
    second = h.importer.poll()
    assert 20 == second.event_count == len(accepted)
    assert list(range(20)) == sorted(int(e.properties["n"]) for e in accepted)


def test_bad_records_are_skipped_with_reasons(make: Any, caplog: pytest.LogCaptureFixture) -> None:
    """Undecodable and nameless records are skipped, reported, logged once per kind; checkpoint moves."""
    seen: list[SkippedRecord] = []
    h = make(shards=1, on_skip=seen.append)
    put(h.aws, [b"garbage", b"more garbage", record(1), b'{"properties":{}}', b"", record(2)])
    with caplog.at_level(logging.WARNING, logger="streambridge"):
        result = h.importer.poll()
    assert [1, 2] == h.ns()
    assert ["not JSON", "not JSON", "no event name at 'properties.eventName'", "empty record"] == [
        s.kind for s in result.skipped
    ]
    assert list(result.skipped) == seen
    assert 3 == len([r for r in caplog.records if "skipped" in r.getMessage()])
    assert "6" == h.importer.shards["shardId-000000000000"].sequence_number


def test_expired_iterator_is_renewed_after_the_checkpoint(make: Any) -> None:
    """ExpiredIterator: a new iterator AFTER_SEQUENCE_NUMBER of the checkpoint, nothing lost."""
    h = make(shards=1, settings=attrs.evolve(SETTINGS, records_per_call=10))
    put(h.aws, [record(n) for n in range(30)])
    h.importer.poll()
    h.faults.add("GetRecords", ErrorFault(400, "ExpiredIteratorException", "Iterator expired"))
    h.advance(1)
    result = h.importer.poll()
    assert 1 == result.expired_iterators
    h.importer.run(until_caught_up=True, max_polls=20)
    assert list(range(30)) == h.ns()
    renewals = [p for op, p in h.faults.requests if op == "GetShardIterator"]
    assert "AFTER_SEQUENCE_NUMBER" == renewals[-1]["ShardIteratorType"]
    assert "10" == renewals[-1]["StartingSequenceNumber"]


def test_throttled_shard_backs_off_alone(make: Any) -> None:
    """ProvisionedThroughputExceeded on one shard delays that shard only."""
    h = make(shards=2)
    put(h.aws, [record(n) for n in range(40)])
    h.faults.add(
        "GetRecords", ErrorFault(400, "ProvisionedThroughputExceededException", "Rate exceeded")
    )
    first = h.importer.poll()
    assert 1 == first.throttled
    assert ["shardId-000000000001"] == list(first.lag)
    h.advance(0.5)
    assert "shardId-000000000000" not in h.importer.poll().lag  # still backing off (1 s)
    h.advance(1.0)
    assert "shardId-000000000000" in h.importer.poll().lag
    assert list(range(40)) == h.ns()


def test_pacing_of_a_caught_up_stream(make: Any) -> None:
    """Caught up, each shard is read about once a second (well within 5 per second)."""
    h = make(shards=2)
    put(h.aws, [record(1)])
    totals = h.importer.run(stop=lambda: h.clock[0] >= 30.0)
    per_shard_per_second = Counter(h.faults.calls)["GetRecords"] / 2 / 30.0
    assert 0.5 <= per_shard_per_second <= 1.2
    assert "stop" == totals.stopped_because


def test_pacing_of_a_busy_shard(make: Any) -> None:
    """A shard with a backlog is read at most 5 times a second."""
    h = make(shards=1, settings=attrs.evolve(SETTINGS, records_per_call=1))
    put(h.aws, [record(n) for n in range(100)])
    h.importer.run(stop=lambda: h.clock[0] >= 10.0)
    calls = Counter(h.faults.calls)["GetRecords"]
    assert 45 <= calls <= 51
    assert list(range(calls)) == h.ns()


def test_list_shards_is_paginated(make: Any) -> None:
    """Shards on a second ListShards page are read too."""
    h = make(shards=2)
    put(h.aws, [record(n) for n in range(20)])
    listing = h.aws.client("kinesis").list_shards(StreamName=STREAM)["Shards"]
    page = [json.loads(json.dumps(s, default=str)) for s in listing]
    h.faults.add(
        "ListShards",
        ResponseFault(200, {"Shards": page[:1], "NextToken": "next-page"}),
        ResponseFault(200, {"Shards": page[1:]}),
    )
    h.importer.poll()
    assert list(range(20)) == h.ns()
    tokens = [p.get("NextToken") for op, p in h.faults.requests if op == "ListShards"]
    assert [None, "next-page"] == tokens


def closed_listing(shard_id: str = "shardId-000000000000") -> ResponseFault:
    """A ListShards answer in which the shard is closed (it has an EndingSequenceNumber)."""
    return ResponseFault(
        200,
        {
            "Shards": [
                {
                    "ShardId": shard_id,
                    "HashKeyRange": {"StartingHashKey": "0", "EndingHashKey": "1"},
                    "SequenceNumberRange": {
                        "StartingSequenceNumber": "1",
                        "EndingSequenceNumber": "2",
                    },
                }
            ]
        },
    )


def test_closed_shard_is_finished(make: Any) -> None:
    """A null NextShardIterator on a shard listed as closed: finished, and never read again."""
    h = make(shards=1)
    put(h.aws, [record(1)])
    h.faults.always("ListShards", closed_listing())
    h.faults.add("GetRecords", ResponseFault(200, {"Records": [], "MillisBehindLatest": 0}))
    result = h.importer.poll()
    assert ("shardId-000000000000",) == result.finished_shards
    assert h.importer.shards["shardId-000000000000"].finished
    h.advance(5)
    assert 0 == h.importer.poll().calls


def test_missing_stream(aws: LocalAWS) -> None:
    """A stream that does not exist raises StreamNotFoundError saying what to fix."""
    importer = KinesisImporter(aws.client("kinesis"), SETTINGS)
    with pytest.raises(StreamNotFoundError, match="fix stream_name / region"):
        importer.poll()


def test_access_denied_names_the_permission(make: Any) -> None:
    """Without kinesis:ListShards (nor DescribeStream) the error says which permission to add."""
    h = make(shards=1)
    h.faults.add("ListShards", access_denied())
    h.faults.add("DescribeStream", access_denied())
    with pytest.raises(AccessDeniedError, match="kinesis:ListShards"):
        h.importer.poll()


def test_without_a_sink_events_are_returned(make: Any) -> None:
    """With no sink, poll() returns the events and the checkpoint advances."""
    h = make(shards=1, sink=None)
    put(h.aws, [record(n) for n in range(3)])
    assert 3 == len(h.importer.poll().events)
    assert "3" == h.importer.shards["shardId-000000000000"].sequence_number


def test_from_posthog_config_and_from_settings(make: Any) -> None:
    """The app's own configuration keys drive an importer built from settings."""
    h = make(shards=1)
    put(h.aws, [record(n) for n in range(3)])
    settings = ImporterSettings.from_posthog_config(
        {
            "kinesisStreamName": STREAM,
            "iamAccessKeyId": "testing",
            "iamSecretAccessKey": "testing",
            "awsRegion": "us-east-1",
            "eventKey": "properties.eventName",
            "additionalPropertyMappings": "properties.userId:distinct_id,properties.n:n",
        },
        start_position="TRIM_HORIZON",
    )
    importer = KinesisImporter.from_settings(settings, endpoint_url=h.aws.endpoint_url)
    assert ["user-0", "user-1", "user-2"] == sorted(e.distinct_id for e in importer.poll().events)


# --------------------------------------------------------------------------- error paths


def test_run_stops_on_event_and_max_events(make: Any) -> None:
    """run() stops on a threading.Event, after max_events, or after max_polls."""
    h = make(shards=1)
    put(h.aws, [record(n) for n in range(5)])
    stop = threading.Event()
    stop.set()
    assert "stop" == h.importer.run(stop=stop).stopped_because
    totals = h.importer.run(max_events=3)
    assert ("max_events", 5) == (totals.stopped_because, totals.events)
    assert "max_polls" == h.importer.run(max_polls=2).stopped_because


@pytest.mark.parametrize(
    "fault",
    [
        ErrorFault(500, "InternalFailure", "oops"),
        ErrorFault(400, "LimitExceededException", "slow down"),
    ],
)
def test_list_shards_transient_errors_keep_the_last_listing(make: Any, fault: Any) -> None:
    """A failed refresh keeps reading the shards already known, and retries the listing later."""
    h = make(shards=1)
    put(h.aws, [record(1)])
    h.importer.poll()
    h.advance(60)
    h.faults.add("ListShards", fault)
    put(h.aws, [record(2)])
    if fault.code == "LimitExceededException":  # not transient: raises
        with pytest.raises(Exception, match="LimitExceededException"):
            h.importer.poll()
        return
    h.importer.poll()
    assert [1, 2] == h.ns()


def test_list_shards_expired_token_restarts_the_listing(make: Any) -> None:
    """ExpiredNextTokenException starts the listing again from the first page."""
    h = make(shards=1)
    h.faults.add(
        "ListShards",
        ResponseFault(200, {"Shards": [], "NextToken": "t"}),
        ErrorFault(400, "ExpiredNextTokenException", "expired"),
    )
    put(h.aws, [record(1)])
    h.importer.poll()
    assert [1] == h.ns()
    assert [None, "t", None] == [
        p.get("NextToken") for op, p in h.faults.requests if op == "ListShards"
    ]


def test_connection_errors_back_off(make: Any) -> None:
    """A connection failure on ListShards or GetRecords is retried later, not raised."""
    h = make(shards=1)
    put(h.aws, [record(1)])
    h.faults.add("ListShards", connection_error())
    assert 0 == h.importer.poll().calls
    h.advance(60)
    h.faults.add("GetRecords", connection_error())
    assert () == h.importer.poll().events
    h.advance(60)
    h.importer.poll()
    assert [1] == h.ns()


def test_trimmed_shard_is_skipped_and_missing_shard_is_fatal(make: Any) -> None:
    """ResourceNotFound for a shard no longer listed finishes it; for a listed shard it raises."""
    h = make(shards=1)
    put(h.aws, [record(1)])
    h.importer.poll()
    h.advance(2)
    h.faults.add("GetRecords", ErrorFault(400, "ResourceNotFoundException", "shard gone"))
    h.faults.add("ListShards", ResponseFault(200, {"Shards": []}))
    result = h.importer.poll()
    assert ("shardId-000000000000",) == result.finished_shards
    h2 = make(shards=None)
    h2.faults.add("GetRecords", ErrorFault(400, "ResourceNotFoundException", "odd"))
    with pytest.raises(StreamNotFoundError):
        h2.importer.poll()


def test_non_retryable_read_errors_raise(make: Any) -> None:
    """KMS configuration errors and botocore errors without a response raise DeliveryError."""

    class NoCredentials(Fault):
        def respond(self, injector: Any, operation: str, request: Any) -> Any:
            raise NoCredentialsError

    h = make(shards=1)
    h.faults.add("GetRecords", ErrorFault(400, "KMSAccessDeniedException", "key"))
    with pytest.raises(DeliveryError, match="KMSAccessDeniedException"):
        h.importer.poll()
    h.faults.add("GetRecords", NoCredentials())
    with pytest.raises(DeliveryError, match="NoCredentialsError"):
        h.importer.poll()


def test_latest_marks_shards_closed_before_the_start_finished(make: Any) -> None:
    """Under LATEST, a shard already closed at first sight has nothing for us: finished unread."""
    h = make(attrs.evolve(SETTINGS, start_position="LATEST"), shards=1)
    h.faults.add(
        "ListShards",
        ResponseFault(
            200,
            {
                "Shards": [
                    {
                        "ShardId": "shardId-000000000000",
                        "HashKeyRange": {"StartingHashKey": "0", "EndingHashKey": "1"},
                        "SequenceNumberRange": {
                            "StartingSequenceNumber": "1",
                            "EndingSequenceNumber": "9",
                        },
                    }
                ]
            },
        ),
    )
    result = h.importer.poll()
    assert 0 == result.calls
    assert h.importer.shards["shardId-000000000000"].finished


def test_on_skip_that_raises_is_logged(make: Any, caplog: pytest.LogCaptureFixture) -> None:
    """A broken on_skip does not stop the import."""

    def boom(_: SkippedRecord) -> None:
        raise RuntimeError("callback bug")

    h = make(shards=1, on_skip=boom)
    put(h.aws, [b"junk", record(1)])
    with caplog.at_level(logging.ERROR, logger="streambridge"):
        h.importer.poll()
    assert [1] == h.ns()
    assert any("on_skip raised" in r.getMessage() for r in caplog.records)


def test_an_empty_custom_store_is_used(make: Any) -> None:
    """A store that is falsy (empty, with __len__) is still the one used."""
    from streambridge import MemoryCheckpointStore  # noqa: PLC0415

    class Counting(MemoryCheckpointStore):
        saves = 0

        def __len__(self) -> int:
            return 0

        def save(self, stream: str, shard_id: str, checkpoint: Any) -> None:
            Counting.saves += 1
            super().save(stream, shard_id, checkpoint)

    store = Counting()
    h = make(shards=1, checkpoints=store)
    put(h.aws, [record(1)])
    h.importer.poll()
    assert h.importer.checkpoints is store
    assert Counting.saves >= 2


def test_a_run_that_never_reaches_kinesis_ends_after_the_backoff_budget(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """No listing ever succeeded: after backoff's budget, a DeliveryError, not polls forever.

    (Before, run() polled every 30 s for ever, warning "keeping the last listing" when there
    never was one.)
    """
    import boto3  # noqa: PLC0415
    from botocore.config import Config  # noqa: PLC0415

    from streambridge import DeliveryError, RetryPolicy  # noqa: PLC0415
    from streambridge.testing import FakeClock  # noqa: PLC0415

    client = boto3.client(
        "kinesis",
        region_name="us-east-1",
        endpoint_url="http://127.0.0.1:9",  # nothing listens there
        aws_access_key_id="x",
        aws_secret_access_key="x",
        config=Config(retries={"total_max_attempts": 1}, connect_timeout=1),
    )
    clock = FakeClock()
    settings = ImporterSettings(stream_name="s", event_key="e")
    backoff = RetryPolicy(max_attempts=4, base_delay=1.0, max_delay=30.0, max_elapsed=600.0)
    importer = KinesisImporter(
        client, settings, backoff=backoff, sleep=clock.sleep, clock=clock, random=lambda: 1.0
    )
    with pytest.raises(DeliveryError, match="could not reach Kinesis stream 's'"):
        importer.run(until_caught_up=True)
    assert "keeping the last listing" not in caplog.text
    assert caplog.text.count("no listing yet") == 3  # attempts 1-3 wait; the 4th gives up
