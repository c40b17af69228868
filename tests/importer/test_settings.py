"""Unit tests of ForwarderSettings and RetryPolicy validation."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from streambridge import (
    ConfigurationError,
    ImporterSettings,
)


def test_importer_defaults() -> None:
    """LATEST like the app and the KCL, 10,000 records a call, 5 calls/s, 1 s when idle."""
    s = ImporterSettings(stream_name="s", event_key="e")
    assert ("LATEST", 10_000, 0.2, 1.0, "AWS Kinesis") == (
        s.start_position,
        s.records_per_call,
        s.min_call_interval,
        s.idle_poll_interval,
        s.default_distinct_id,
    )
    assert () == s.additional_property_mappings
    assert "" == s.mappings_text


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("latest", "LATEST"),
        (" Trim_Horizon ", "TRIM_HORIZON"),
        ("2024-05-01T10:00:00Z", datetime(2024, 5, 1, 10, tzinfo=timezone.utc)),
        ("2024-05-01T12:00:00+02:00", datetime(2024, 5, 1, 10, tzinfo=timezone.utc)),
        ("2024-05-01", datetime(2024, 5, 1, tzinfo=timezone.utc)),
        (
            datetime(2024, 5, 1, 12, tzinfo=timezone(timedelta(hours=2))),
            datetime(2024, 5, 1, 10, tzinfo=timezone.utc),
        ),
    ],
)
def test_start_positions(value: object, expected: object) -> None:
    """Start positions: the two names in any case, ISO text or an aware datetime (as UTC)."""
    assert (
        expected
        == ImporterSettings(stream_name="s", event_key="e", start_position=value).start_position
    )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"start_position": "AT_SEQUENCE_NUMBER"}, "start_position"),
        ({"start_position": datetime(2024, 5, 1)}, "timezone-aware"),  # noqa: DTZ001
        ({"stream_name": "arn:aws:kinesis:us-east-1:1:stream/s"}, "not an ARN"),
        ({"event_key": ""}, "event_key"),
        ({"records_per_call": 0}, "records_per_call"),
        ({"records_per_call": 10_001}, "records_per_call"),
        ({"min_call_interval": -1}, "min_call_interval"),
        ({"additional_property_mappings": "a:b:c"}, "more than one ':'"),
        ({"additional_property_mappings": 5}, "additional_property_mappings"),
        ({"region": "nowhere"}, "region"),
        ({"default_distinct_id": " "}, "default_distinct_id"),
    ],
)
def test_importer_settings_validation(kwargs: dict[str, object], match: str) -> None:
    """Bad values raise ConfigurationError naming the field."""
    base: dict[str, object] = {"stream_name": "s", "event_key": "e"}
    with pytest.raises(ConfigurationError, match=match):
        ImporterSettings(**(base | kwargs))  # type: ignore[arg-type]


def test_from_posthog_config() -> None:
    """The app's keys are accepted; empty strings mean unset; secrets never print."""
    s = ImporterSettings.from_posthog_config(
        {
            "kinesisStreamName": "clicks",
            "iamAccessKeyId": "AKIDSECRETID",
            "iamSecretAccessKey": "SUPERSECRET",
            "awsRegion": "",
            "eventKey": "properties.eventName",
            "additionalPropertyMappings": "properties.userId:distinct_id,properties.foo:foo",
        }
    )
    assert ("clicks", None, "properties.userId:distinct_id,properties.foo:foo") == (
        s.stream_name,
        s.region,
        s.mappings_text,
    )
    assert "SUPERSECRET" not in repr(s)
    assert "AKIDSECRETID" not in repr(s)
    assert (
        "TRIM_HORIZON"
        == ImporterSettings.from_posthog_config(
            {"kinesisStreamName": "c", "eventKey": "e"}, start_position="TRIM_HORIZON"
        ).start_position
    )


@pytest.mark.parametrize(
    ("config", "match"),
    [
        ({"kinesisStreamName": "c"}, "'eventKey' is required"),
        (
            {"kinesisStreamName": "c", "eventKey": "e", "eventkey": "x"},
            "unknown PostHog app setting 'eventkey'; did you mean 'eventKey'",
        ),
        (
            {"kinesisStreamName": "c", "eventKey": "e", "additionalPropertyMappings": "props.foo"},
            "'props.foo' has no ':'",
        ),
        ({"kinesisStreamName": "a b", "eventKey": "e"}, "'kinesisStreamName'"),
        (
            {"kinesisStreamName": "c", "eventKey": "e", "iamSecretAccessKey": ["SUPERSECRET"]},
            "'iamSecretAccessKey'",
        ),
    ],
)
def test_from_posthog_config_errors(config: dict[str, object], match: str) -> None:
    """Unknown keys, missing required keys and bad values name the app's key; no secret echoed."""
    with pytest.raises(ConfigurationError, match=match) as info:
        ImporterSettings.from_posthog_config(config)
    assert "SUPERSECRET" not in str(info.value)


def test_from_posthog_config_takes_the_names_the_apps_page_shows() -> None:
    """Issue 22: "Kinesis Stream Name", "Posthog event key"… in any case; twice is refused."""
    shown = ImporterSettings.from_posthog_config(
        {
            "Kinesis Stream Name": "clicks",
            "posthog EVENT key": "properties.eventName",
            "Additional Kinesis to Posthog property mappings": "properties.userId:distinct_id",
            "AWS Region": "eu-west-1",
        }
    )
    keyed = ImporterSettings.from_posthog_config(
        {
            "kinesisStreamName": "clicks",
            "eventKey": "properties.eventName",
            "additionalPropertyMappings": "properties.userId:distinct_id",
            "awsRegion": "eu-west-1",
        }
    )
    assert shown == keyed
    with pytest.raises(ConfigurationError, match="'eventKey' is given twice"):
        ImporterSettings.from_posthog_config(
            {"Kinesis Stream Name": "c", "eventKey": "e", "Event Key": "e"}
        )
    with pytest.raises(ConfigurationError, match="did you mean 'Kinesis Stream Name'"):
        ImporterSettings.from_posthog_config({"Kinesis Stream Nam": "c", "eventKey": "e"})


def test_from_posthog_config_needs_a_mapping() -> None:
    """A list is not a configuration."""
    with pytest.raises(ConfigurationError, match="mapping"):
        ImporterSettings.from_posthog_config([])  # type: ignore[arg-type]
