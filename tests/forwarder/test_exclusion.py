"""Unit tests of streambridge.forwarder.exclusion (Metadata Field Exclusion)."""

from __future__ import annotations

from typing import Any

import attrs
import pytest

from streambridge import ConfigurationError, ForwarderSettings
from streambridge.forwarder.exclusion import exclude_fields, parse_selectors
from streambridge.forwarder.filtering import filter_batch
from tests.conftest import frozen_copy


def test_documented_aliases(ios: dict[str, Any]) -> None:
    """The alias "Device Name" removes device_info.device, "IP Address" the top-level ip."""
    before = frozen_copy(ios)
    out = exclude_fields(ios, ["Device Name", "IP Address"])
    assert "device" not in out["device_info"]
    assert "ip" not in out
    assert {k: v for k, v in ios["device_info"].items() if k != "device"} == out["device_info"]
    assert before == ios


def test_aliases_ignore_case_and_spacing() -> None:
    """Labels match as mParticle's UI might send them."""
    assert (("device_info", "device"), ("ip",)) == parse_selectors(["device  NAME", " ip address "])


def test_dotted_paths_and_top_level_keys(ios: dict[str, Any]) -> None:
    """Dotted paths reach into any top-level object; one segment removes a top-level key."""
    out = exclude_fields(
        ios, ["device_info.ios_advertising_id", "application_info", "user_attributes.$age"]
    )
    assert "ios_advertising_id" not in out["device_info"]
    assert "application_info" not in out
    assert "$age" not in out["user_attributes"]
    assert ios["source_info"] is out["source_info"]  # untouched objects are shared, not copied


def test_absent_fields_are_ignored(s2s: dict[str, Any]) -> None:
    """Excluding a field the batch lacks, or whose parent is not an object, changes nothing."""
    assert s2s == exclude_fields(s2s, ["Device Name", "ip", "mpid.x", "user_attributes.nope"])


@pytest.mark.parametrize(
    "selector", ["", "  ", "device_info.", ".ip", "a..b", "events", "events.0.data"]
)
def test_bad_selectors_are_configuration_errors(selector: str) -> None:
    """Empty selectors, empty segments and paths into events are refused, naming the selector."""
    with pytest.raises(ConfigurationError, match="metadata field exclusion"):
        parse_selectors([selector])


def test_duplicates_collapse() -> None:
    """The same field named twice (alias and path) is removed once."""
    assert (("ip",),) == parse_selectors(["IP Address", "ip"])


def test_settings_accept_comma_separated_text(ios: dict[str, Any]) -> None:
    """The setting takes mParticle's text form and removes the fields after filtering."""
    settings = ForwarderSettings(
        delivery_stream_name="s", metadata_field_exclusion="Device Name, IP Address,"
    )
    assert ("Device Name", "IP Address") == settings.metadata_field_exclusion
    out = filter_batch(ios, settings)
    assert out is not None
    assert "ip" not in out
    assert "device" not in out["device_info"]
    no_metadata = filter_batch(ios, attrs.evolve(settings, include_metadata=False))
    assert no_metadata is not None
    assert "device_info" not in no_metadata
