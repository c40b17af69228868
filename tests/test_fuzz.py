"""Hypothesis: hostile input never escapes, and every input is accounted for (issue 8).

Values nested up to 5,000 deep, 400-digit and 5,000-digit integers, lone surrogates, NaN and
infinities, non-string keys, huge strings — for both halves. The forwarder runs through a real
boto3 client whose calls are answered by botocore's machinery (``AcceptAll``); the importer's
conversion runs on crafted Kinesis records.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any, TypeVar

import boto3
import pytest
from botocore.config import Config
from hypothesis import given
from hypothesis import strategies as st

from streambridge import (
    FirehoseForwarder,
    ForwarderSettings,
    ImporterSettings,
    RecordConverter,
)
from streambridge.forwarder.encoding import encode_record
from streambridge.importer.events import event_uuid
from streambridge.testing import AcceptAll, FaultInjector

ARRIVAL = datetime(2026, 12, 1, tzinfo=timezone.utc)
SinkT = TypeVar("SinkT", bound=AcceptAll)


def nested(depth: int, leaf: Any) -> Any:
    """``leaf`` inside ``depth`` arrays or objects."""
    value = leaf
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


SURROGATES = st.sampled_from(["\ud800", "\udfff", "a\ud83d", "\udc00b"])
HUGE_NUMBERS = st.builds(
    lambda digits, sign: sign * 10**digits,
    st.sampled_from([19, 64, 400, 5000]),
    st.sampled_from([1, -1]),
)
FLOATS = st.floats(allow_nan=True, allow_infinity=True)
TEXT = st.one_of(
    st.text(max_size=20), SURROGATES, st.builds(lambda n: "x" * n, st.sampled_from([0, 1_100_000]))
)
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), HUGE_NUMBERS, FLOATS, TEXT)
KEYS = st.one_of(st.text(max_size=8), SURROGATES, st.integers(), st.none(), st.booleans())
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(KEYS, inner, max_size=4),
    ),
    max_leaves=12,
)
DEEP = st.builds(nested, st.integers(1, 5_000), SCALARS)
NASTY = st.one_of(VALUES, DEEP)

EVENT_TYPES = st.sampled_from(
    ["custom_event", "screen_view", "session_start", "commerce_event", "crash_report", "x"]
)
EVENTS = st.one_of(
    st.fixed_dictionaries(
        {"event_type": EVENT_TYPES, "data": st.dictionaries(st.text(max_size=8), NASTY)}
    ),
    NASTY,
)
BATCHES = st.one_of(
    st.fixed_dictionaries(
        {"events": st.lists(EVENTS, max_size=4)},
        optional={
            "message_id": NASTY,
            "user_attributes": NASTY,
            "device_info": NASTY,
            "context": NASTY,
            "ip": NASTY,
        },
    ),
    NASTY,
)


def answered_by(sink: SinkT) -> Iterator[tuple[Any, SinkT]]:
    """A Firehose client that never leaves the machine: ``sink`` answers every put."""
    client = boto3.client(
        "firehose",
        region_name="us-east-1",
        endpoint_url="http://127.0.0.1:9",  # never reached: the fault answers first
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"total_max_attempts": 1}),
    )
    with FaultInjector(client) as faults:
        faults.always("PutRecordBatch", sink)
        faults.always("PutRecord", sink)
        yield client, sink


@pytest.fixture(name="firehose", scope="module")
def _firehose() -> Iterator[tuple[Any, AcceptAll]]:
    """A Firehose client that never leaves the machine: AcceptAll answers every put."""
    yield from answered_by(AcceptAll())


@pytest.mark.parametrize("send_as_batch", [True, False])
@given(batches=st.lists(BATCHES, max_size=6))
def test_forwarder_accounts_for_every_batch(
    firehose: tuple[Any, AcceptAll], send_as_batch: bool, batches: list[Any]
) -> None:
    """No exception escapes; each input is rejected, skipped or becomes sent/failed records."""
    client, sink = firehose
    settings = ForwarderSettings(
        delivery_stream_name="s",
        send_as_batch=send_as_batch,
        metadata_field_exclusion="IP Address, device_info.platform",
    )
    before = sink.records
    result = FirehoseForwarder(client, settings, sleep=lambda _: None).forward_many(batches)
    assert len(batches) == result.batches
    rejected = {r.index for r in result.rejected}
    skipped = {s.index for s in result.skipped}
    assert not rejected & skipped
    assert all(r.reason for r in result.rejected)
    assert all(s.reason for s in result.skipped)
    producing = len(batches) - len(rejected) - len(skipped)
    assert producing <= result.sent + len(result.failed)
    assert result.sent == sink.records - before
    assert all(f.error_code in {"EncodingError", "RecordTooLarge"} for f in result.failed)
    assert all(f.error_message for f in result.failed)


def record_bytes(value: Any, style: str) -> bytes:
    """A Kinesis record's data holding ``value``, written in one of several ways."""
    if style == "raw":
        return value if isinstance(value, bytes) else b"\xff\xfe" + str(type(value)).encode()
    try:
        text = json.dumps(value, ensure_ascii=style == "ascii", allow_nan=True)
    except (RecursionError, ValueError, TypeError):
        text = "[" * 3_000 + "]" * 3_000
    return text.encode("utf-8", "surrogatepass")


PAYLOADS = st.one_of(
    st.builds(
        lambda name, props: {"name": name, "properties": props},
        st.one_of(TEXT, NASTY),
        st.dictionaries(st.sampled_from(["userId", "ts", "foo", "n"]), NASTY),
    ),
    NASTY,
)
RECORDS = st.lists(
    st.one_of(
        st.tuples(PAYLOADS, st.sampled_from(["utf8", "ascii"])),
        st.tuples(st.binary(max_size=40), st.just("raw")),
        st.tuples(st.integers(900, 5_000).map(lambda d: b"[" * d + b"]" * d), st.just("raw")),
    ),
    min_size=1,
    max_size=8,
)
CONVERTER = RecordConverter(
    ImporterSettings(
        stream_name="s",
        event_key="name",
        additional_property_mappings=(
            "properties.userId:distinct_id,properties.ts:timestamp,properties.foo:foo,"
            "properties.n:n"
        ),
    ),
)


@given(records=RECORDS)
def test_importer_accounts_for_every_record(records: list[tuple[Any, str]]) -> None:
    """Each record becomes events or skips with reasons; every event is strict UTF-8 JSON."""
    kinesis = [
        {
            "Data": record_bytes(value, style),
            "SequenceNumber": str(n),
            "ApproximateArrivalTimestamp": ARRIVAL,
        }
        for n, (value, style) in enumerate(records)
    ]
    events, skipped = CONVERTER.convert("shard", kinesis)
    accounted = {s.sequence_number for s in skipped}
    uuids = {e.uuid for e in events}
    for n in range(len(records)):
        if str(n) not in accounted:
            assert event_uuid("s", "shard", str(n)) in uuids
    assert all(s.reason for s in skipped)
    for event in events:
        encode_record(event.capture_json()).decode("utf-8")
