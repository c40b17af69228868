"""Unit tests of ForwarderSettings and RetryPolicy validation."""

from __future__ import annotations

import attrs
import pytest

from streambridge import ConfigurationError, ForwarderSettings
from streambridge.forwarder.settings import DISPLAY_NAMES

MPARTICLE_DEFAULTS = {
    "send_lifecycle_events": True,
    "send_screen_views": True,
    "send_crash_events": True,
    "send_network_performance_events": True,
    "send_custom_events": True,
    "send_push_registrations_and_receipts": True,
    "send_as_batch": True,
    "wait_for_complete_batch": False,
    "include_location_information": True,
    "include_event_batch_location": False,
    "send_profile_change_events": True,
    "send_commerce_events": True,
    "include_metadata": True,
    "include_user_attribute_change_events": False,
    "include_user_identity_change_events": False,
    "send_batches_without_events": True,
    "include_mp_deviceid": False,
}


def test_defaults_are_mparticles() -> None:
    """Every boolean setting defaults to the value on mParticle's connection page."""
    settings = ForwarderSettings(delivery_stream_name="s")
    assert MPARTICLE_DEFAULTS == {k: getattr(settings, k) for k in MPARTICLE_DEFAULTS}
    assert "us-east-1" == settings.region
    assert settings.unique_id is None
    assert () == settings.metadata_field_exclusion


def test_every_field_has_a_display_name() -> None:
    """from_mparticle can set every field by its mParticle name."""
    assert {f.name for f in attrs.fields(ForwarderSettings)} == set(DISPLAY_NAMES.values())


def test_from_mparticle_display_names_and_string_booleans() -> None:
    """Display names with "True"/"False" strings or bools, in any case, are accepted."""
    settings = ForwarderSettings.from_mparticle(
        {
            "Delivery Stream Name": "events",
            "AWS Region Endpoint": "eu-west-1",
            "Unique ID": "",
            "Send as Batch": "False",
            "send lifecycle events": "true",
            "Include MP DeviceId": True,
            "Metadata Field Exclusion": ["Device Name"],
            "Access Key ID": "AKIAEXAMPLE",
            "Secret Access Key": "s3cr3t-value",
        }
    )
    assert "events" == settings.delivery_stream_name
    assert "eu-west-1" == settings.region
    assert settings.unique_id is None
    assert settings.send_as_batch is False
    assert settings.include_mp_deviceid is True
    assert ("Device Name",) == settings.metadata_field_exclusion
    assert "s3cr3t-value" == settings.secret_access_key


def test_from_mparticle_accepts_attribute_names() -> None:
    """The Python attribute names work too."""
    assert not ForwarderSettings.from_mparticle(
        {"delivery_stream_name": "s", "send_as_batch": False}
    ).send_as_batch


@pytest.mark.parametrize(
    ("mapping", "match"),
    [
        (
            {"Delivery Stream Name": "s", "Send as Bach": True},
            "unknown setting 'Send as Bach'; did you mean 'Send as Batch'",
        ),
        ({"Delivery Stream Name": "s", "Send as Batch": "yes"}, "'Send as Batch'.*got 'yes'"),
        ({"Delivery Stream Name": "s", "Send as Batch": 1}, "'Send as Batch'"),
        ({"Send as Batch": True}, "'Delivery Stream Name'.*required"),
        ({"Delivery Stream Name": "bad name!"}, "delivery_stream_name"),
        ({"Delivery Stream Name": "s", "AWS Region Endpoint": "mars"}, "region"),
        ({"Delivery Stream Name": "s", "Unique ID": 5}, "'Unique ID'"),
        (
            {"Delivery Stream Name": "s", "send_as_batch": True, "Send as Batch": False},
            "given twice",
        ),
        (
            {"Delivery Stream Name": "s", "Metadata Field Exclusion": "events.x"},
            "points into events",
        ),
        ({5: "x"}, "setting names must be strings"),
    ],
)
def test_from_mparticle_errors_name_the_setting(mapping: dict[object, object], match: str) -> None:
    """An unknown name or a bad value raises ConfigurationError naming it."""
    with pytest.raises(ConfigurationError, match=match):
        ForwarderSettings.from_mparticle(mapping)  # type: ignore[arg-type]


def test_from_mparticle_needs_a_mapping() -> None:
    """A list is not a settings mapping."""
    with pytest.raises(ConfigurationError, match="mapping"):
        ForwarderSettings.from_mparticle([("a", 1)])  # type: ignore[arg-type]


def test_secrets_never_print() -> None:
    """Credentials are absent from repr and from error messages."""
    settings = ForwarderSettings(
        delivery_stream_name="s", access_key_id="AKIDSECRETID", secret_access_key="SUPERSECRET"
    )
    assert "SUPERSECRET" not in repr(settings)
    assert "AKIDSECRETID" not in repr(settings)
    with pytest.raises(ConfigurationError) as info:
        ForwarderSettings.from_mparticle(
            {"Delivery Stream Name": "s", "Secret Access Key": ["SUPERSECRET"]}
        )
    assert "SUPERSECRET" not in str(info.value)
    with pytest.raises(ConfigurationError) as info:
        ForwarderSettings(delivery_stream_name="s", secret_access_key=["SUPERSECRET"])  # type: ignore[arg-type]
    assert "SUPERSECRET" not in str(info.value)


def test_direct_construction_validates() -> None:
    """Constructing with a wrong type raises ConfigurationError naming the field."""
    with pytest.raises(ConfigurationError, match="send_as_batch"):
        ForwarderSettings(delivery_stream_name="s", send_as_batch="False")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="metadata_field_exclusion"):
        ForwarderSettings(delivery_stream_name="s", metadata_field_exclusion=5)
    with pytest.raises(ConfigurationError, match="entries must be strings"):
        ForwarderSettings(delivery_stream_name="s", metadata_field_exclusion=[5])
    assert (
        ()
        == ForwarderSettings(
            delivery_stream_name="s", metadata_field_exclusion=None
        ).metadata_field_exclusion
    )


def test_settings_are_frozen_and_hashable() -> None:
    """Settings are values: immutable, comparable, hashable."""
    a = ForwarderSettings(delivery_stream_name="s")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        a.send_as_batch = False  # type: ignore[misc]
    assert {a} == {ForwarderSettings(delivery_stream_name="s")}
