"""Unit tests of streambridge.forwarder.encoding: JSON records, size limits, packing, responses."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest

from streambridge import EncodingError
from streambridge.forwarder.encoding import (
    HAS_ORJSON,
    MAX_RECORD_BYTES,
    BatchPacker,
    encode_record,
    encode_record_stdlib,
    failed_entries,
    fit_record,
    pack_records,
    record_fits,
)

ENCODERS = [encode_record_stdlib, encode_record]


@pytest.mark.parametrize("encode", ENCODERS)
def test_compact_utf8_json(encode: Any) -> None:
    """Records are compact UTF-8 JSON with non-ASCII text kept as is."""
    assert '{"a":[1,2],"b":"Übergröße 🏕️"}'.encode() == encode({"a": [1, 2], "b": "Übergröße 🏕️"})


@pytest.mark.parametrize("encode", ENCODERS)
@pytest.mark.parametrize("number", [2**63, -(2**63) - 1, 2**64, 10**40, -(10**40)])
def test_big_integers_stay_exact(encode: Any, number: int) -> None:
    """Integers beyond 64 bits are written exactly (orjson falls back to the stdlib)."""
    assert f'{{"batch_id":{number}}}'.encode() == encode({"batch_id": number})


@pytest.mark.parametrize("bad", [float("nan"), {1: {"x": object()}}, {"s": {1, 2}}])
def test_stdlib_refuses_what_json_cannot_hold(bad: Any) -> None:
    """NaN and non-JSON objects raise EncodingError, a ValueError."""
    with pytest.raises(EncodingError):
        encode_record_stdlib(bad)


def test_orjson_is_used_when_installed() -> None:
    """The `fast` extra is installed in the test environment and picked up."""
    assert HAS_ORJSON
    assert encode_record is not encode_record_stdlib


def test_record_fits() -> None:
    """The limit counts raw bytes, before base64."""
    assert record_fits(b"x" * MAX_RECORD_BYTES)
    assert not record_fits(b"x" * (MAX_RECORD_BYTES + 1))


def _batch(n_events: int, event_size: int) -> dict[str, Any]:
    return {
        "mpid": 1,
        "events": [
            {"event_type": "custom_event", "data": {"i": i, "pad": "x" * event_size}}
            for i in range(n_events)
        ],
        "user_attributes": {"a": "b"},
    }


def test_fit_record_small_batch_is_one_record() -> None:
    """A batch within the limit is one record, exactly its encoding plus the delimiter."""
    batch = _batch(3, 10)
    assert ([encode_record(batch) + b"\n"], []) == fit_record(batch, delimiter=b"\n")


@pytest.mark.parametrize("delimiter", [b"", b"\n"])
def test_fit_record_splits_by_events_within_the_limit(delimiter: bytes) -> None:
    """An oversize batch becomes records that each fit and together hold every event in order."""
    batch = _batch(40, 300)
    limit = 2_000
    records, oversize = fit_record(batch, limit=limit, delimiter=delimiter)
    assert [] == oversize
    assert len(records) > 1
    decoded = [json.loads(r) for r in records]
    assert all(len(r) <= limit for r in records)
    assert all(r.endswith(delimiter) for r in records)
    assert batch["events"] == [e for d in decoded for e in d["events"]]
    for d in decoded:  # every record keeps the whole envelope
        assert {k: v for k, v in batch.items() if k != "events"} == {
            k: v for k, v in d.items() if k != "events"
        }
    # greedy packing is tight: merging any two neighbours would overflow
    for a, b in itertools.pairwise(decoded):
        merged = dict(a, events=a["events"] + b["events"])
        assert len(encode_record(merged) + delimiter) > limit


def test_fit_record_event_too_big_alone_fails_without_blocking_others() -> None:
    """An event that cannot fit even alone becomes Oversize; its neighbours are still sent."""
    batch = _batch(5, 100)
    batch["events"][2]["data"]["pad"] = "y" * 5_000
    records, oversize = fit_record(batch, limit=2_000)
    assert 1 == len(oversize)
    assert 2 == json.loads(oversize[0].data)["events"][0]["data"]["i"]
    assert oversize[0].size == len(oversize[0].data) > 2_000
    assert "exceeds the Firehose limit of 2,000 bytes" in oversize[0].message
    sent = [e["data"]["i"] for r in records for e in json.loads(r)["events"]]
    assert [0, 1, 3, 4] == sent


def test_fit_record_oversize_without_events() -> None:
    """An eventless (or one-event) batch over the limit is one Oversize."""
    batch = {"events": [], "user_attributes": {"big": "z" * 3_000}}
    assert ([], 1) == (fit_record(batch, limit=2_000)[0], len(fit_record(batch, limit=2_000)[1]))


def test_packer_limits_and_order() -> None:
    """Groups never exceed the record or byte limit and keep record order."""
    records = [bytes([65 + i % 26]) * (1 + (i * 37) % 100) for i in range(1_000)]
    groups = list(pack_records(records, max_records=7, max_bytes=300))
    assert records == [r for g in groups for r in g]
    assert all(len(g) <= 7 and sum(map(len, g)) <= 300 for g in groups)


def test_packer_lone_oversize_record_gets_its_own_group() -> None:
    """A record bigger than max_bytes is not merged with anything."""
    assert [[b"a"], [b"x" * 10], [b"b"]] == list(pack_records([b"a", b"x" * 10, b"b"], max_bytes=5))


def test_packer_rejects_nonsense_limits() -> None:
    """Zero limits are a programming error."""
    with pytest.raises(ValueError):
        BatchPacker(max_records=0)


def test_failed_entries() -> None:
    """Failed entries are read by index; a mismatched response is reported as None."""
    ok = {"FailedPutCount": 0, "RequestResponses": [{"RecordId": "1"}]}
    assert [] == failed_entries(ok, 1)
    mixed = {
        "FailedPutCount": 1,
        "RequestResponses": [
            {"RecordId": "1"},
            {"ErrorCode": "ServiceUnavailableException", "ErrorMessage": "Slow down."},
        ],
    }
    assert [(1, "ServiceUnavailableException", "Slow down.")] == failed_entries(mixed, 2)
    assert failed_entries(mixed, 3) is None


@pytest.mark.parametrize("depth", [513, 700, 1_000])
def test_one_nesting_limit_for_encoding_on_every_python(depth: int) -> None:
    """Deeper than 512 levels is an EncodingError alike on 3.10 to 3.13 (3.12 encoded 1,000)."""
    value: Any = 0
    for _ in range(depth):
        value = [value]
    with pytest.raises(EncodingError, match="nested too deeply"):
        encode_record({"events": [{"data": {"x": value}}]})


def test_512_levels_encode() -> None:
    """The limit itself is fine."""
    value: Any = 0
    for _ in range(511):
        value = [value]
    assert encode_record(value).startswith(b"[[[")
