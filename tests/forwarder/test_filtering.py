"""Unit tests of streambridge.forwarder.filtering: every connection setting, on and off, on the samples."""

from __future__ import annotations

from collections import Counter
from typing import Any

import attrs
import pytest

from streambridge import ForwarderSettings, InvalidBatchError
from streambridge.forwarder.filtering import (
    BAD_DATA,
    BAD_EVENT_TYPE,
    NO_EVENT_TYPE,
    NOT_AN_OBJECT,
    evaluate,
    event_type_enabled,
    filter_batch,
)
from tests.conftest import SAMPLE_NAMES, frozen_copy, load_sample

DEFAULT = ForwarderSettings(delivery_stream_name="s")


def types(batch: dict[str, Any] | None) -> Counter[str]:
    """Event types of a batch, counted."""
    assert batch is not None
    return Counter(e["event_type"] for e in batch["events"])


# (setting, sample, event types it gates, how many of them the sample has)
GATES = [
    (
        "send_lifecycle_events",
        "ios_lifecycle_screens_custom_commerce.json",
        {"session_start", "session_end", "application_state_transition"},
        4,
    ),
    ("send_screen_views", "ios_lifecycle_screens_custom_commerce.json", {"screen_view"}, 3),
    ("send_crash_events", "android_crash_network_push_location.json", {"crash_report"}, 1),
    (
        "send_network_performance_events",
        "android_crash_network_push_location.json",
        {"network_performance"},
        2,
    ),
    ("send_custom_events", "ios_lifecycle_screens_custom_commerce.json", {"custom_event"}, 2),
    (
        "send_push_registrations_and_receipts",
        "android_crash_network_push_location.json",
        {"push_registration", "push_message"},
        3,
    ),
    ("send_commerce_events", "ios_lifecycle_screens_custom_commerce.json", {"commerce_event"}, 4),
    ("send_profile_change_events", "web_identity_attribute_profile_changes.json", {"profile"}, 3),
    (
        "include_user_attribute_change_events",
        "web_identity_attribute_profile_changes.json",
        {"user_attribute_change"},
        4,
    ),
    (
        "include_user_identity_change_events",
        "web_identity_attribute_profile_changes.json",
        {"user_identity_change"},
        3,
    ),
]


@pytest.mark.parametrize(("setting", "sample", "gated", "count"), GATES)
@pytest.mark.parametrize("value", [True, False])
def test_event_type_settings_gate_exactly_their_types(
    setting: str, sample: str, gated: set[str], count: int, value: bool
) -> None:
    """Each event setting keeps (True) or removes (False) its types and no others."""
    batch = load_sample(sample)
    everything = ForwarderSettings(
        delivery_stream_name="s",
        **{s: True for s, *_ in GATES},  # type: ignore[arg-type]
    )
    changes: dict[str, Any] = {setting: value}
    settings = attrs.evolve(everything, **changes)
    outcome = evaluate(batch, settings)
    kept = types(outcome.batch)
    original = types(batch)
    assert count == sum(original[t] for t in gated)
    for event_type, n in original.items():
        expected = 0 if (event_type in gated and not value) else n
        assert expected == kept[event_type], event_type
    assert (0 if value else count) == outcome.filtered_events


def test_defaults_match_mparticle_expectations(samples: list[dict[str, Any]]) -> None:
    """Under mParticle's defaults the samples keep the events the reference lists."""
    kept = {name: filter_batch(load_sample(name), DEFAULT) for name in SAMPLE_NAMES}
    assert 13 == len(kept["ios_lifecycle_screens_custom_commerce.json"]["events"])  # type: ignore[index]
    assert 13 == len(kept["android_crash_network_push_location.json"]["events"])  # type: ignore[index]
    web = kept["web_identity_attribute_profile_changes.json"]
    assert {"user_attribute_change", "user_identity_change"}.isdisjoint(types(web))
    assert 6 == sum(types(web).values())
    assert [] == kept["s2s_eventless_attribute_sync.json"]["events"]  # type: ignore[index]
    for batch in kept.values():
        assert batch is not None
        assert "mp_deviceid" not in batch


def test_event_types_match_ignoring_case(odd: dict[str, Any]) -> None:
    """`CUSTOM_EVENT` is gated by Send Custom Events and passed through unchanged."""
    on = filter_batch(odd, DEFAULT)
    assert 1 == types(on)["CUSTOM_EVENT"]
    off = filter_batch(odd, attrs.evolve(DEFAULT, send_custom_events=False))
    assert 0 == types(off)["CUSTOM_EVENT"] + types(off)["custom_event"]
    assert event_type_enabled("Custom_Event", DEFAULT)
    assert not event_type_enabled("Custom_Event", attrs.evolve(DEFAULT, send_custom_events=False))


def test_ungated_types_always_pass(odd: dict[str, Any]) -> None:
    """Types no setting covers (first_run, opt_out, breadcrumb, unknown…) pass with all off."""
    all_off = ForwarderSettings(
        delivery_stream_name="s",
        **{s: False for s, *_ in GATES},  # type: ignore[arg-type]
    )
    kept = types(filter_batch(odd, all_off))
    assert {"media_heartbeat", "first_run", "opt_out", "validation_result"} == set(kept)
    android = types(filter_batch(load_sample("android_crash_network_push_location.json"), all_off))
    assert {"breadcrumb": 2} == dict(android)


def test_push_reaction_is_gated_by_push_setting(odd: dict[str, Any]) -> None:
    """The legacy push_reaction type counts as a push receipt."""
    assert 1 == types(filter_batch(odd, DEFAULT))["push_reaction"]
    off = attrs.evolve(DEFAULT, send_push_registrations_and_receipts=False)
    assert 0 == types(filter_batch(odd, off))["push_reaction"]


@pytest.mark.parametrize("value", [True, False])
def test_include_location_information(ios: dict[str, Any], value: bool) -> None:
    """Include Location Information keeps or removes every events[].data.location."""
    batch = filter_batch(ios, attrs.evolve(DEFAULT, include_location_information=value))
    assert batch is not None
    with_location = sum("location" in e["data"] for e in batch["events"])
    assert (12 if value else 0) == with_location
    if not value:  # the rest of each event is untouched
        for before, after in zip(ios["events"], batch["events"], strict=True):
            assert {k: v for k, v in before["data"].items() if k != "location"} == after["data"]


@pytest.mark.parametrize("value", [True, False])
def test_include_event_batch_location(
    android: dict[str, Any], ios: dict[str, Any], value: bool
) -> None:
    """Include Event Batch Location keeps or removes context.location; data_plan stays."""
    settings = attrs.evolve(DEFAULT, include_event_batch_location=value)
    out = filter_batch(android, settings)
    assert out is not None
    if value:
        assert android["context"] == out["context"]
    else:
        assert "context" not in out  # its only key was location: the empty shell goes too
    ios["context"]["location"] = {"city_name": "Denver"}
    out = filter_batch(ios, settings)
    assert out is not None
    assert ios["context"]["data_plan"] == out["context"]["data_plan"]
    assert value == ("location" in out["context"])


@pytest.mark.parametrize("value", [True, False])
def test_include_metadata(ios: dict[str, Any], value: bool) -> None:
    """Include Metadata keeps or removes application_info, device_info and source_info."""
    out = filter_batch(ios, attrs.evolve(DEFAULT, include_metadata=value))
    assert out is not None
    for key in ("application_info", "device_info", "source_info"):
        assert value == (key in out)
    assert ios["user_attributes"] == out["user_attributes"]


@pytest.mark.parametrize("value", [True, False])
def test_include_mp_deviceid(ios: dict[str, Any], value: bool) -> None:
    """Include MP DeviceId keeps or removes the top-level mp_deviceid."""
    out = filter_batch(ios, attrs.evolve(DEFAULT, include_mp_deviceid=value))
    assert out is not None
    assert value == ("mp_deviceid" in out)


def test_unique_id(ios: dict[str, Any], odd: dict[str, Any]) -> None:
    """Unique ID is added when set, overrides an upstream value, and is absent when unset."""
    out = filter_batch(ios, DEFAULT)
    assert out is not None
    assert "unique_id" not in out
    out = filter_batch(ios, attrs.evolve(DEFAULT, unique_id="my-app"))
    assert out is not None
    assert "my-app" == out["unique_id"]
    upstream = filter_batch(odd, DEFAULT)
    assert upstream is not None
    assert "already-set-upstream" == upstream["unique_id"]
    replaced = filter_batch(odd, attrs.evolve(DEFAULT, unique_id="my-app"))
    assert replaced is not None
    assert "my-app" == replaced["unique_id"]


@pytest.mark.parametrize("value", [True, False])
def test_send_batches_without_events(s2s: dict[str, Any], value: bool) -> None:
    """An eventless batch is sent as is, or skipped with a reason naming the setting."""
    outcome = evaluate(s2s, attrs.evolve(DEFAULT, send_batches_without_events=value))
    if value:
        assert s2s == outcome.batch
    else:
        assert outcome.batch is None
        assert "Send Batches without Events" in (outcome.skip_reason or "")


def test_eventless_check_runs_after_filtering(web: dict[str, Any]) -> None:
    """A batch whose events are all filtered out counts as eventless."""
    only_changes = dict(
        web, events=[e for e in web["events"] if e["event_type"].startswith("user_")]
    )
    kept = evaluate(only_changes, DEFAULT)
    assert kept.batch is not None
    assert [] == kept.batch["events"]
    assert 7 == kept.filtered_events
    skipped = evaluate(only_changes, attrs.evolve(DEFAULT, send_batches_without_events=False))
    assert skipped.batch is None
    assert "all 7 events were removed" in (skipped.skip_reason or "")


def test_absent_events_key_is_an_eventless_batch(s2s: dict[str, Any]) -> None:
    """A batch without `events` is eventless; filtering never adds the key."""
    del s2s["events"]
    assert s2s == filter_batch(s2s, DEFAULT)
    assert filter_batch(s2s, attrs.evolve(DEFAULT, send_batches_without_events=False)) is None


@pytest.mark.parametrize(
    ("batch", "reason"),
    [
        ([], "batch is not a JSON object (got an array)"),
        ("x", "batch is not a JSON object (got a string)"),
        (None, "batch is not a JSON object (got null)"),
        (3, "batch is not a JSON object (got a number)"),
        (True, "batch is not a JSON object (got a boolean)"),
        ({"events": "nope"}, "events is not a list (got a string)"),
        ({"events": None}, "events is not a list (got null)"),
        ({"events": {"a": 1}}, "events is not a list (got an object)"),
    ],
)
def test_unreadable_batches_raise_a_typed_error(batch: object, reason: str) -> None:
    """Input that is not a batch raises InvalidBatchError with a stable reason."""
    with pytest.raises(InvalidBatchError) as info:
        filter_batch(batch, DEFAULT)
    assert reason == info.value.reason
    assert isinstance(info.value, ValueError)


def test_malformed_events_are_dropped_and_counted() -> None:
    """Events that are not objects, lack a type, or have non-object data are counted by reason."""
    batch: dict[str, Any] = {
        "events": [
            None,
            3,
            "x",
            {"data": {}},
            {"event_type": ""},
            {"event_type": 5},
            {"event_type": "custom_event", "data": "oops"},
            {"event_type": "custom_event", "data": None},
            {"event_type": "custom_event"},
            {"event_type": "custom_event", "data": {"event_name": "ok"}},
        ]
    }
    outcome = evaluate(batch, DEFAULT)
    assert {NOT_AN_OBJECT: 3, NO_EVENT_TYPE: 1, BAD_EVENT_TYPE: 2, BAD_DATA: 1} == outcome.dropped
    assert 7 == outcome.dropped_events
    assert outcome.batch is not None
    assert batch["events"][7:] == outcome.batch["events"]


def test_odd_sample_goes_through(odd: dict[str, Any]) -> None:
    """The odd-data sample filters without error; its strange values pass through unchanged."""
    outcome = evaluate(odd, DEFAULT)
    assert outcome.batch is not None
    assert {NOT_AN_OBJECT: 1, NO_EVENT_TYPE: 1} == outcome.dropped
    assert 1 == outcome.filtered_events  # the user_attribute_change
    assert 2**63 == outcome.batch["batch_id"]
    assert odd["x_unknown_top_level"] == outcome.batch["x_unknown_top_level"]
    assert odd["user_identities"] == outcome.batch["user_identities"]


@pytest.mark.parametrize("name", SAMPLE_NAMES)
@pytest.mark.parametrize("everything", [True, False])
def test_input_is_never_mutated(name: str, everything: bool) -> None:
    """filter_batch leaves its input exactly as it was, whatever the settings."""
    batch = load_sample(name)
    before = frozen_copy(batch)
    settings = ForwarderSettings(
        delivery_stream_name="s",
        unique_id="u",
        metadata_field_exclusion=("Device Name", "IP Address", "context.data_plan"),
        **{s: everything for s, *_ in GATES},  # type: ignore[arg-type]
        include_location_information=everything,
        include_event_batch_location=everything,
        include_metadata=everything,
        include_mp_deviceid=everything,
    )
    out = filter_batch(batch, settings)
    assert before == batch
    assert out is not batch
