"""Nothing lost, nothing silent: malformed 200 answers, poison input, escapes (issue 8).

Faults are injected at the HTTP level: a ``before-send`` hook answers with a crafted HTTP
response (after really sending the request to moto, where the case needs it), so botocore's
real parser reads a cut-short, garbled or foreign body exactly as it would from the network.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import attrs
import pytest

from streambridge import (
    DeliveryError,
    FatalSinkError,
    FirehoseForwarder,
    ForwardAbortedError,
    ForwarderSettings,
    ImporterSettings,
    JsonLinesSink,
    KinesisImporter,
    MalformedAnswerError,
    PostHogEvent,
    RetryPolicy,
    SkippedRecord,
)
from streambridge.forwarder import building as module
from streambridge.importer import conversion as importer_module
from streambridge.testing import (
    MANGLES,
    FaultInjector,
    LocalAWS,
    MalformedAnswer,
    PartialFailure,
    ResponseFault,
)

pytestmark = pytest.mark.integration

FIREHOSE = "events"
PER_EVENT = ForwarderSettings(delivery_stream_name=FIREHOSE, send_as_batch=False)
KINESIS = "clicks"
IMPORT = ImporterSettings(
    stream_name=KINESIS,
    event_key="name",
    additional_property_mappings="n:n,ts:timestamp,user:distinct_id",
    start_position="TRIM_HORIZON",
)


def batches(count: int, per_batch: int = 20) -> list[dict[str, Any]]:
    """``count`` events in batches of ``per_batch``; each event carries its number ``n``."""
    return [
        {
            "message_id": f"m{start}",
            "events": [
                {"event_type": "custom_event", "data": {"event_name": "e", "n": n}}
                for n in range(start, min(start + per_batch, count))
            ],
        }
        for start in range(0, count, per_batch)
    ]


def delivered_ns(aws: LocalAWS) -> Counter[int]:
    """How often each event number reached the delivery stream's bucket."""
    return Counter(
        event["data"]["n"] for record in aws.delivered(FIREHOSE) for event in record["events"]
    )


@attrs.define
class Forwarding:
    """A forwarder on moto with faults on its client and no real waiting."""

    aws: LocalAWS
    forwarder: FirehoseForwarder
    faults: FaultInjector


@pytest.fixture(name="forwarding")
def _forwarding(aws: LocalAWS) -> Iterator[Any]:
    aws.create_delivery_stream(FIREHOSE)
    made: list[FaultInjector] = []

    def make(settings: ForwarderSettings = PER_EVENT, **options: Any) -> Forwarding:
        client = aws.client("firehose")
        faults = FaultInjector(client)
        made.append(faults)
        options.setdefault("sleep", lambda _: None)
        options.setdefault("max_in_flight", 1)  # queued faults meet the calls in order
        forwarder = FirehoseForwarder(client, settings, random=lambda: 0.0, **options)
        return Forwarding(aws, forwarder, faults)

    yield make
    for faults in made:
        faults.close()


# --------------------------------------------------------------------------- case 1


@pytest.mark.parametrize("mangle", MANGLES)
def test_malformed_batch_answer_loses_nothing(forwarding: Any, mangle: str) -> None:
    """A 200 PutRecordBatch answer that is cut short, not JSON, empty or foreign: re-sent.

    The spoilt answer stands in for one whose entries partly failed (10% throttled), so the
    records it hides were not all stored: believing it would lose them.
    """
    h = forwarding()
    inner = PartialFailure(fraction=0.1, seed=3)
    h.faults.add("PutRecordBatch", PartialFailure(0.0), MalformedAnswer(mangle, inner=inner))
    result = h.forwarder.forward_many(batches(2_000))
    got = delivered_ns(h.aws)
    assert set(range(2_000)) == set(got)  # nothing lost
    assert result.ok
    assert 2_000 == result.sent
    assert 1 <= result.retries
    assert sum(got.values()) - 2_000 <= 500  # duplicates: at most the spoilt call's records


def test_malformed_answers_until_the_budget_ends_are_failed_records(forwarding: Any) -> None:
    """Malformed answers every time: each record comes back failed, code MalformedAnswer."""
    h = forwarding(retry=RetryPolicy(max_attempts=3))
    h.faults.always("PutRecordBatch", MalformedAnswer("truncate", deliver=False))
    result = h.forwarder.forward_many(batches(40))
    assert (0, 40) == (result.sent, len(result.failed))
    assert {("MalformedAnswer", 3)} == {(f.error_code, f.attempts) for f in result.failed}
    assert "outcome is unknown" in result.failed[0].error_message


@pytest.mark.parametrize(
    "body",
    [
        {"FailedPutCount": 0, "RequestResponses": [{}] * 20},  # entries without RecordId
        {"FailedPutCount": 0, "RequestResponses": [{"RecordId": "r"}] * 19},  # one short
        {"FailedPutCount": 3, "RequestResponses": [{"RecordId": "r"}] * 20},  # inconsistent
        {"FailedPutCount": 0, "RequestResponses": "nope"},
        {"FailedPutCount": 0},
    ],
)
def test_answers_that_do_not_say_entry_by_entry_are_not_believed(
    forwarding: Any, body: dict[str, Any]
) -> None:
    """A parsed answer without one RecordId-or-ErrorCode entry per record is not success."""
    h = forwarding()
    h.faults.add("PutRecordBatch", ResponseFault(200, body))
    result = h.forwarder.forward_many(batches(20))
    assert (20, 1) == (result.sent, result.retries)
    assert set(range(20)) == set(delivered_ns(h.aws))


def test_malformed_put_record_answer_is_resent(forwarding: Any) -> None:
    """PutRecord mode: a 200 without RecordId means the record is sent again."""
    h = forwarding(put_mode="single")
    h.faults.add("PutRecord", MalformedAnswer("not_json", deliver=False))
    result = h.forwarder.forward_many(batches(3, per_batch=1))
    assert (3, 1) == (result.sent, result.retries)
    assert {0: 1, 1: 1, 2: 1} == dict(delivered_ns(h.aws))


# --------------------------------------------------------------------------- case 4


def nested(depth: int, leaf: Any = 1) -> Any:
    """A value ``depth`` arrays deep."""
    value = leaf
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("poison", "code"),
    [
        (nested(1_000), "EncodingError"),
        (nested(5_000), "EncodingError"),
        ("\ud800", "EncodingError"),
        (10**5000, "EncodingError"),
        (float("nan"), None),  # orjson writes null; the stdlib refuses: either way accounted
    ],
    ids=["deep-1000", "deep-5000", "surrogate", "5000-digits", "nan"],
)
def test_poison_event_stops_nothing(forwarding: Any, poison: Any, code: str | None) -> None:
    """An event JSON cannot carry fails alone, with a reason; the records around it are sent."""
    h = forwarding()
    good = batches(200)
    good[4]["events"][3]["data"]["poison"] = poison
    result = h.forwarder.forward_many(good)
    got = delivered_ns(h.aws)
    assert 200 == result.sent + len(result.failed)
    assert 200 == len(got) + len(result.failed)
    if code is not None and result.failed:
        (failed,) = result.failed
        assert code == failed.error_code
        assert failed.data  # readable text, never a crash
        assert 83 not in got


def test_a_batch_that_cannot_be_processed_is_rejected(
    forwarding: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever goes wrong inside one batch's processing rejects that batch, with a reason."""
    h = forwarding()
    real = module.evaluate  # type: ignore[attr-defined]

    def flaky(batch: Any, settings: Any) -> Any:
        if batch.get("message_id") == "m40":
            raise RecursionError("maximum recursion depth exceeded")
        return real(batch, settings)

    monkeypatch.setattr(module, "evaluate", flaky)
    result = h.forwarder.forward_many(batches(100))
    (rejected,) = result.rejected
    assert 2 == rejected.index
    assert "RecursionError" in rejected.reason
    assert 80 == result.sent
    assert set(range(100)) - set(range(40, 60)) == set(delivered_ns(h.aws))


def test_an_escaping_error_carries_every_record_not_delivered(forwarding: Any) -> None:
    """The input iterable raising mid-stream: a StreambridgeError with the undelivered records."""
    h = forwarding()

    def source() -> Iterator[dict[str, Any]]:
        yield from batches(130)
        raise OSError("the input went away")

    with pytest.raises(ForwardAbortedError, match="OSError") as info:
        h.forwarder.forward_many(source())
    error = info.value
    assert isinstance(error.__cause__, OSError)
    assert error.result is not None
    carried = {json.loads(r)["events"][0]["data"]["n"] for r in error.undelivered}
    got = delivered_ns(h.aws)
    assert set(range(130)) == set(got) | carried
    assert not set(got) & carried
    assert error.result.sent == sum(got.values())


# --------------------------------------------------------------------------- case 2


@attrs.define
class Importing:
    """An importer on moto with faults on its client, a fake clock and a recording sink."""

    aws: LocalAWS
    importer: KinesisImporter
    faults: FaultInjector
    events: list[PostHogEvent]
    clock: list[float]

    def ns(self) -> Counter[int]:
        """How often each record number was imported."""
        return Counter(int(e.properties["n"]) for e in self.events)

    def drain(self, polls: int = 200) -> None:
        """Poll (moving the fake clock) until every shard is at its tip, or ``polls`` run out."""
        for _ in range(polls):
            self.importer.poll()
            self.clock[0] += 30.0
            if self.importer._table.caught_up():
                return


@pytest.fixture(name="importing")
def _importing(aws: LocalAWS) -> Iterator[Any]:
    made: list[FaultInjector] = []

    def make(
        records: list[bytes], settings: ImporterSettings = IMPORT, **options: Any
    ) -> Importing:
        aws.create_stream(KINESIS, shards=1)
        aws.put_records(KINESIS, records, key="one-shard")
        client = aws.client("kinesis")
        faults = FaultInjector(client)
        made.append(faults)
        events: list[PostHogEvent] = []
        clock = [0.0]
        options.setdefault("sink", events.extend)
        options.setdefault("max_in_flight", 1)  # queued faults meet the shards in order
        importer = KinesisImporter(
            client, settings, clock=lambda: clock[0], random=lambda: 0.0, **options
        )
        return Importing(aws, importer, faults, events, clock)

    yield make
    for faults in made:
        faults.close()


def good(n: int) -> bytes:
    """A record the importer turns into one event with ``n``."""
    return json.dumps({"name": "click", "n": n, "user": f"u{n % 5}"}).encode()


SMALL_CALLS = attrs.evolve(IMPORT, records_per_call=50)


@pytest.mark.parametrize("mangle", MANGLES)
@pytest.mark.parametrize("operation", ["GetRecords", "GetShardIterator"])
def test_malformed_read_answers_never_finish_an_open_shard(
    importing: Any, operation: str, mangle: str
) -> None:
    """A spoilt 200 to GetRecords or GetShardIterator: the shard stays open; all 300 arrive."""
    h = importing([good(n) for n in range(300)], settings=SMALL_CALLS)
    h.faults.add(operation, MalformedAnswer(mangle))
    if operation == "GetRecords":  # and one more, later in the shard
        h.importer.poll()
        h.clock[0] += 1
        h.faults.add(operation, MalformedAnswer(mangle))
    h.drain()
    assert set(range(300)) == set(h.ns())
    checkpoint = h.importer.shards["shardId-000000000000"]
    assert not checkpoint.finished
    assert 0 == h.importer.undelivered


def test_a_missing_next_iterator_on_an_open_shard_is_not_the_end(importing: Any) -> None:
    """A well-formed answer with no NextShardIterator, for a shard listed open: not believed."""
    h = importing([good(n) for n in range(10)])
    h.faults.add("GetRecords", ResponseFault(200, {"Records": [], "MillisBehindLatest": 0}))
    first = h.importer.poll()
    assert (1, ()) == (first.malformed_answers, first.finished_shards)
    h.drain()
    assert set(range(10)) == set(h.ns())
    assert not h.importer.shards["shardId-000000000000"].finished


@pytest.mark.parametrize("mangle", MANGLES)
def test_malformed_shard_listing_keeps_the_last_one(importing: Any, mangle: str) -> None:
    """A spoilt ListShards answer: the last listing stays and reading goes on."""
    h = importing([good(n) for n in range(10)])
    h.importer.poll()
    h.clock[0] += 100  # the listing is due again
    h.faults.add("ListShards", MalformedAnswer(mangle))
    h.importer.poll()
    assert ["shardId-000000000000"] == list(h.importer.shards)
    assert set(range(10)) == set(h.ns())


# --------------------------------------------------------------------------- case 3


POISON = [
    b"[" * 1_100 + b"]" * 1_100,  # deeper than either JSON decoder goes
    b'{"name": "click", "n": 1, "ts": 1' + b"0" * 400 + b"}",  # a 400-digit timestamp
    b'{"name": "click", "n": 1, "user": 1' + b"0" * 5000 + b"}",  # beyond int -> str limits
    b'{"name": "click\\ud800", "n": 1}',  # a lone surrogate in the event name
    b'{"name": "click", "n": 1, "user": "\\udfff"}',  # ... and in the distinct_id
    b'{"name": "click", "n": 1, "ts": 1e400}',
]


def test_poison_records_are_skipped_and_the_shard_moves_on(importing: Any) -> None:
    """Each poison record is skipped with a reason; the 100 good records behind it arrive."""
    records: list[bytes] = []
    for index, poison in enumerate(POISON):
        records.append(poison)
        records.extend(good(100 * index + n) for n in range(100))
    skipped: list[SkippedRecord] = []
    h = importing(records, on_skip=skipped.append)
    h.drain()
    assert {100 * i + n for i in range(len(POISON)) for n in range(100)} == set(h.ns())
    assert len(POISON) == len(skipped)
    last = h.aws.client("kinesis").get_records(
        ShardIterator=h.aws.client("kinesis").get_shard_iterator(
            StreamName=KINESIS, ShardId="shardId-000000000000", ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"],
        Limit=10_000,
    )["Records"][-1]["SequenceNumber"]
    assert last == h.importer.shards["shardId-000000000000"].sequence_number


def test_poison_skips_carry_reasons(importing: Any) -> None:
    """The reasons say what was wrong, without echoing the huge value."""
    h = importing(POISON)
    result = h.importer.poll()
    reasons = [s.reason for s in result.skipped]
    assert len(POISON) == len(reasons)
    assert "nested too deeply to decode" == reasons[0]
    assert "timestamp of about 400 digits is out of range" == reasons[1]
    assert "4300" in reasons[2]  # Python's own limit, met while decoding (worded per version)
    assert "lone surrogate" in reasons[3]
    assert "lone surrogate" in reasons[4]
    assert "timestamp inf is out of range" == reasons[5]
    assert all(len(r) < 300 for r in reasons)


# --------------------------------------------------------------------------- neighbours


@pytest.mark.parametrize(
    ("operation", "body"),
    [
        ("GetRecords", {"Records": "garbled", "MillisBehindLatest": 0}),
        ("GetShardIterator", {"ShardIterator": {"not": "a string"}}),
    ],
)
def test_bodies_that_crash_botocores_parser_are_malformed_answers(
    importing: Any, operation: str, body: dict[str, Any]
) -> None:
    """Botocore raising on a body of the wrong shape is an unknown outcome, not a crash."""
    h = importing([good(n) for n in range(5)])
    h.faults.add(operation, ResponseFault(200, body))
    assert 1 == h.importer.poll().malformed_answers
    h.drain()
    assert set(range(5)) == set(h.ns())


def test_a_listing_that_crashes_the_parser_keeps_the_last_one(importing: Any) -> None:
    """ListShards with Shards of the wrong type: the last listing stays."""
    h = importing([good(n) for n in range(5)])
    h.importer.poll()
    h.clock[0] += 100
    h.faults.add("ListShards", ResponseFault(200, {"Shards": "garbled"}))
    h.drain()
    assert set(range(5)) == set(h.ns())


def test_a_batch_answer_that_crashes_the_parser_is_resent(forwarding: Any) -> None:
    """PutRecordBatch and PutRecord answers botocore cannot parse: re-sent."""
    h = forwarding()
    h.faults.add("PutRecordBatch", ResponseFault(200, {"RequestResponses": "garbled"}))
    result = h.forwarder.forward_many(batches(20))
    assert (20, 1) == (result.sent, result.retries)
    single = forwarding(put_mode="single")
    single.faults.add("PutRecord", ResponseFault(200, {"RecordId": {"not": "a string"}}))
    result = single.forwarder.forward_many(batches(1))
    assert (1, 1) == (result.sent, result.retries)


def test_the_last_line_catches_what_no_rule_foresaw(
    importing: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unexpected error decoding or converting one record skips it, with its type."""
    real_loads = importer_module.loads  # type: ignore[attr-defined]
    real_event = importer_module._event  # type: ignore[attr-defined]

    real_decode = importer_module._decode

    def loads(data: bytes) -> Any:  # the one-object record's short way…
        if b'"n": 2,' in data:
            raise MemoryError("pretend")
        return real_loads(data)

    def decode(data: bytes, plain: bool) -> list[Any]:  # …and the general one
        if b'"n": 2,' in data:
            raise MemoryError("pretend")
        return real_decode(data, plain)

    def event(*args: Any) -> PostHogEvent:
        if args[5].get("n") == 4:  # the payload, after the five the converter binds
            raise ZeroDivisionError("pretend")
        return real_event(*args)

    monkeypatch.setattr(importer_module, "loads", loads)
    monkeypatch.setattr(importer_module, "_decode", decode)
    monkeypatch.setattr(importer_module, "_event", event)  # before the converter binds it
    h = importing([good(n) for n in range(6)])
    result = h.importer.poll()
    assert {0, 1, 3, 5} == set(h.ns())
    assert [
        "cannot be converted (MemoryError: pretend)",
        "cannot be converted (ZeroDivisionError: pretend)",
    ] == [s.reason for s in result.skipped]


def test_send_delivers_encoded_records(forwarding: Any) -> None:
    """send(): records as they are, packed and retried; one over the limit fails alone."""
    h = forwarding(max_record_bytes=100)
    records = [json.dumps({"events": [{"data": {"n": n}}]}).encode() for n in range(30)]
    h.faults.add("PutRecordBatch", PartialFailure(fraction=0.5, seed=2))
    result = h.forwarder.send([*records, b"x" * 101])
    assert (30, ["RecordTooLarge"]) == (result.sent, [f.error_code for f in result.failed])
    assert set(range(30)) == set(delivered_ns(h.aws))


def test_send_carries_the_undelivered_on_a_fatal_error(forwarding: Any) -> None:
    """A fatal error in send() carries every record not delivered, and so does a raising input."""
    h = forwarding(max_batch_records=10, max_in_flight=1)  # the 3rd call, as read
    h.faults.add("PutRecordBatch", PartialFailure(0.0), ResponseFault(400, {}))
    records = [json.dumps({"events": [{"data": {"n": n}}]}).encode() for n in range(25)]
    with pytest.raises(DeliveryError) as info:
        h.forwarder.send(records)  # a list: the records not yet taken are carried too
    assert records[10:] == list(info.value.undelivered)

    def source() -> Iterator[bytes]:
        yield from records[:3]
        raise OSError("gone")

    with pytest.raises(ForwardAbortedError) as aborted:
        h.forwarder.send(source())
    assert 3 == len(aborted.value.undelivered)


@pytest.mark.parametrize("mangle", MANGLES)
def test_check_on_a_malformed_answer_is_a_typed_error(forwarding: Any, mangle: str) -> None:
    """check() given a spoilt DescribeDeliveryStream answer raises MalformedAnswerError."""
    h = forwarding()
    h.faults.add("DescribeDeliveryStream", MalformedAnswer(mangle))
    with pytest.raises(MalformedAnswerError, match="DescribeDeliveryStream"):
        h.forwarder.check()
    assert "ACTIVE" == h.forwarder.check().status


def test_a_closed_pipe_stops_the_json_lines_sink() -> None:
    """Writing to a pipe whose reader is gone is a FatalSinkError, not an endless retry."""
    read, write = os.pipe()
    os.close(read)
    with open(write, "w", encoding="utf-8") as stream:  # noqa: PTH123 - a pipe's descriptor
        with pytest.raises(FatalSinkError, match="broken pipe"):
            JsonLinesSink(stream)(
                [
                    PostHogEvent(
                        event="e",
                        distinct_id="d",
                        timestamp=datetime(2026, 1, 1, tzinfo=timezone.utc),
                        uuid="u",
                    )
                ]
            )
        with contextlib.suppress(BrokenPipeError):
            stream.close()
