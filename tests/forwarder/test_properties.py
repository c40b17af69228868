"""Hypothesis properties of the pure core."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from streambridge import ForwarderSettings
from streambridge.forwarder.encoding import (
    encode_record,
    encode_record_stdlib,
    fit_record,
    pack_records,
)
from streambridge.forwarder.exclusion import exclude_fields
from streambridge.forwarder.filtering import EVENT_TYPE_SETTINGS, filter_batch
from tests.conftest import frozen_copy
from tests.strategies import json_values

event_types = st.sampled_from(
    [*EVENT_TYPE_SETTINGS, "first_run", "breadcrumb", "CUSTOM_EVENT", "media_heartbeat"]
)
events = st.one_of(
    st.fixed_dictionaries(
        {"event_type": event_types},
        optional={
            "data": st.one_of(
                st.none(),
                st.dictionaries(
                    st.sampled_from(["location", "event_name", "session_uuid", "x"]),
                    json_values,
                    max_size=4,
                ),
            )
        },
    ),
    json_values,  # malformed events of every kind
)
metadata_keys = st.sampled_from(
    [
        "device_info",
        "application_info",
        "source_info",
        "context",
        "mp_deviceid",
        "ip",
        "mpid",
        "unique_id",
        "user_attributes",
        "message_id",
    ]
)
batches = st.builds(
    lambda base, evs, with_events: {**base, "events": evs} if with_events else base,
    st.dictionaries(
        metadata_keys,
        json_values
        | st.dictionaries(
            st.sampled_from(["device", "location", "data_plan", "ios_advertising_id"]),
            json_values,
            max_size=4,
        ),
        max_size=8,
    ),
    st.lists(events, max_size=8),
    st.booleans(),
)
bool_fields = [
    "send_lifecycle_events",
    "send_screen_views",
    "send_crash_events",
    "send_network_performance_events",
    "send_custom_events",
    "send_push_registrations_and_receipts",
    "include_location_information",
    "include_event_batch_location",
    "send_profile_change_events",
    "send_commerce_events",
    "include_metadata",
    "include_user_attribute_change_events",
    "include_user_identity_change_events",
    "send_batches_without_events",
    "include_mp_deviceid",
]
selectors = st.lists(
    st.sampled_from(
        [
            "Device Name",
            "IP Address",
            "context.data_plan",
            "device_info.ios_advertising_id",
            "user_attributes",
            "mpid.x",
        ]
    ),
    max_size=3,
)
settings_st = st.builds(
    lambda flags, excl, uid: ForwarderSettings(
        delivery_stream_name="s",
        metadata_field_exclusion=excl,
        unique_id=uid,
        **dict(zip(bool_fields, flags, strict=True)),
    ),
    st.lists(st.booleans(), min_size=len(bool_fields), max_size=len(bool_fields)),
    selectors,
    st.none() | st.just("uid"),
)


def _is_subsequence(small: list[Any], big: list[Any], same: Any) -> bool:
    """Whether `small` matches, in order, some items of `big` (compared with `same`)."""
    items = iter(big)
    return all(any(same(s, b) for b in items) for s in small)


def _same_or_without_location(out: Any, original: Any) -> bool:
    if out is original:
        return True
    if not isinstance(original, dict) or not isinstance(original.get("data"), dict):
        return False
    data = {k: v for k, v in original["data"].items() if k != "location"}
    return bool(out == {**original, "data": data})


def _keys_within(out: Any, original: Any) -> bool:
    """Every key path of `out` exists in `original`."""
    if isinstance(out, dict):
        return isinstance(original, dict) and all(
            k in original and _keys_within(v, original[k]) for k, v in out.items()
        )
    return True


@given(batches, settings_st)
def test_filtering_never_adds_events_or_keys_and_never_mutates(
    batch: dict[str, Any], settings: ForwarderSettings
) -> None:
    """Filtering keeps a subsequence of the events, adds no key but unique_id, mutates nothing."""
    before = frozen_copy(batch)
    out = filter_batch(batch, settings)
    assert before == batch
    if out is None:
        return
    allowed = set(batch) | ({"unique_id"} if settings.unique_id else set())
    assert set(out) <= allowed
    if "events" in batch:
        assert _is_subsequence(out["events"], batch["events"], _same_or_without_location)
    for key, value in out.items():
        if key not in ("events", "unique_id"):
            assert _keys_within(value, batch[key])


@given(batches, selectors)
def test_exclusion_never_adds_keys(batch: dict[str, Any], chosen: list[str]) -> None:
    """Exclusion only removes: every key path of the result is in the input, input unchanged."""
    before = frozen_copy(batch)
    out = exclude_fields(batch, chosen)
    assert before == batch
    assert _keys_within(out, batch)


@given(json_values)
def test_encoded_records_round_trip(value: Any) -> None:
    """encode_record output decodes to the same value, with either encoder."""
    assert value == json.loads(encode_record(value))
    assert value == json.loads(encode_record_stdlib(value))


@given(
    st.lists(st.integers(min_value=0, max_value=500), max_size=300),
    st.integers(min_value=1, max_value=20),
    st.integers(min_value=500, max_value=3_000),
)
def test_packing_never_exceeds_a_limit(sizes: list[int], max_records: int, max_bytes: int) -> None:
    """Every group is within both limits, and groups keep every record in order."""
    records = [b"r" * s for s in sizes]
    groups = list(pack_records(records, max_records=max_records, max_bytes=max_bytes))
    assert records == [r for g in groups for r in g]
    assert all(1 <= len(g) <= max_records and sum(map(len, g)) <= max_bytes for g in groups)


@given(
    st.lists(st.text(max_size=400), max_size=30),
    st.integers(min_value=200, max_value=3_000),
    st.sampled_from([b"", b"\n"]),
)
def test_fit_record_never_exceeds_the_limit_nor_loses_events(
    pads: list[str], limit: int, delimiter: bytes
) -> None:
    """Split records fit; sent plus oversize events are exactly the input events, in order."""
    batch: dict[str, Any] = {
        "mpid": 7,
        "events": [{"event_type": "custom_event", "data": {"p": p}} for p in pads],
    }
    records, oversize = fit_record(batch, limit=limit, delimiter=delimiter)
    assert all(len(r) <= limit for r in records)
    assert all(o.size > limit for o in oversize)
    sent = [e for r in records for e in json.loads(r)["events"]]
    too_big = [e for o in oversize for e in json.loads(o.data).get("events", [])]
    assert sorted(map(json.dumps, batch["events"])) == sorted(map(json.dumps, sent + too_big))
    assert _is_subsequence(sent, batch["events"], lambda a, b: a == b)
