"""The importer's settings: the PostHog "Amazon Kinesis Import" app's configuration, and more.

:class:`ImporterSettings` holds the app's configuration plus the position and pacing the app
lacked; :meth:`ImporterSettings.from_posthog_config` reads the app's own keys. Strict: an
unknown name or a bad value raises :class:`~streambridge.errors.ConfigurationError` naming it,
never echoing a credential.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Literal

import attrs

from streambridge._settings import did_you_mean, normalise, optional_region, optional_str
from streambridge._util import parse_iso_datetime
from streambridge.errors import ConfigurationError
from streambridge.importer.keys import (
    PropertyMapping,
    format_property_mappings,
    parse_property_mappings,
)

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["POSTHOG_KEYS", "POSTHOG_NAMES", "ImporterSettings", "StartPosition", "posthog_keys"]

StartPosition = Literal["LATEST", "TRIM_HORIZON"] | datetime
_KINESIS_STREAM = re.compile(r"[a-zA-Z0-9_.-]{1,128}")


def _start_position(value: object) -> StartPosition:
    """``"LATEST"``, ``"TRIM_HORIZON"`` (any case), an aware datetime, or ISO 8601 text."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            msg = "start_position datetime must be timezone-aware (e.g. tzinfo=timezone.utc)"
            raise ConfigurationError(msg)
        return value.astimezone(timezone.utc)
    if isinstance(value, str):
        upper = value.strip().upper()
        if upper == "LATEST":
            return "LATEST"
        if upper == "TRIM_HORIZON":
            return "TRIM_HORIZON"
        parsed = parse_iso_datetime(value)
        if parsed is not None:
            return _start_position(parsed)
    msg = (
        f"start_position must be 'LATEST', 'TRIM_HORIZON' or a timestamp (datetime or ISO 8601), "
        f"got {value!r}"
    )
    raise ConfigurationError(msg)


def _mappings(value: object) -> tuple[PropertyMapping, ...]:
    if value is None or isinstance(value, str):
        return parse_property_mappings(value)
    if isinstance(value, Iterable):
        items = tuple(value)
        if all(isinstance(item, PropertyMapping) for item in items):
            return items  # checked just above
    msg = f"additional_property_mappings must be text like 'a.b:c,d:e', got {value!r}"
    raise ConfigurationError(msg)


def _kinesis_stream(inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str) or not _KINESIS_STREAM.fullmatch(value):
        msg = (
            f"stream_name must be 1-128 letters, digits, '_', '.' or '-' (a name, not an ARN), "
            f"got {value!r}"
        )
        raise ConfigurationError(msg)


def _event_key(inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"event_key must be a non-empty dotted path, got {value!r}")


def _between(low: float, high: float) -> Any:
    def check(inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if (
            not isinstance(value, (int, float))
            or isinstance(value, bool)
            or not low <= value <= high
        ):
            raise ConfigurationError(f"{attribute.name} must be in [{low}, {high}], got {value!r}")

    return check


def _stream_free_text() -> Any:
    def check(inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if not isinstance(value, str) or not value.strip():
            raise ConfigurationError(f"{attribute.name} must be a non-empty string, got {value!r}")

    return check


@attrs.frozen(kw_only=True)
class ImporterSettings:
    """What to read from a Kinesis Data Stream and how to turn it into PostHog events.

    Attributes:
        stream_name: The Kinesis Data Stream (by name).
        event_key: Dotted path to the event name in each record (``properties.eventName``).
        additional_property_mappings: ``source.path:target`` pairs; text is parsed (and
            validated) at construction.
        start_position: Where to start on a shard with no checkpoint: ``"LATEST"`` (default,
            like the app and the KCL), ``"TRIM_HORIZON"``, or a timestamp (AT_TIMESTAMP).
        records_per_call: ``Limit`` of each ``GetRecords`` call (1-10,000).
        min_call_interval: Seconds between two ``GetRecords`` on one shard (0.2 = the 5 per
            second AWS allows).
        idle_poll_interval: Seconds between polls of a shard that is caught up.
        default_distinct_id: The ``distinct_id`` of events with no ``distinct_id`` mapping
            (the app's events all belonged to its name, "AWS Kinesis").
        personless: Send the events that get ``default_distinct_id`` as personless events
            (``$process_person_profile: false``), so that they do not all pile onto one
            person. Off by default, as in the app.
        region: AWS region for :meth:`KinesisImporter.from_settings` (None: boto3's default).
        access_key_id: Optional IAM access key id (never printed).
        secret_access_key: Optional IAM secret access key (never printed).
        role_arn: A role to assume (in another account) before calling AWS, with the keys
            above or the environment's credentials; refreshed before it expires.
        external_id: The External ID the role's trust policy requires (not printed).
        role_session_name: The role session's name (CloudTrail; default ``streambridge``).
    """

    stream_name: str = attrs.field(validator=_kinesis_stream)
    event_key: str = attrs.field(validator=_event_key)
    additional_property_mappings: tuple[PropertyMapping, ...] = attrs.field(
        default=(), converter=_mappings
    )
    start_position: StartPosition = attrs.field(default="LATEST", converter=_start_position)
    records_per_call: int = attrs.field(default=10_000, validator=_between(1, 10_000))
    min_call_interval: float = attrs.field(default=0.2, validator=_between(0.0, 3600.0))
    idle_poll_interval: float = attrs.field(default=1.0, validator=_between(0.0, 3600.0))
    default_distinct_id: str = attrs.field(default="AWS Kinesis", validator=_stream_free_text())
    personless: bool = attrs.field(default=False, validator=attrs.validators.instance_of(bool))
    region: str | None = attrs.field(default=None, validator=optional_region)
    access_key_id: str | None = attrs.field(default=None, repr=False, validator=optional_str)
    secret_access_key: str | None = attrs.field(default=None, repr=False, validator=optional_str)
    role_arn: str | None = attrs.field(default=None, validator=optional_str)
    external_id: str | None = attrs.field(default=None, repr=False, validator=optional_str)
    role_session_name: str | None = attrs.field(default=None, validator=optional_str)

    @property
    def mappings_text(self) -> str:
        """The mappings in the app's syntax."""
        return format_property_mappings(self.additional_property_mappings)

    @classmethod
    def from_posthog_config(cls, mapping: Mapping[str, object], **overrides: Any) -> Self:
        """Build settings from the PostHog app's configuration keys.

        Accepts ``kinesisStreamName``, ``iamAccessKeyId``, ``iamSecretAccessKey``,
        ``awsRegion``, ``eventKey`` and ``additionalPropertyMappings``, or the names the app's
        page shows ("Kinesis Stream Name", "Posthog event key"…, :data:`POSTHOG_NAMES`, in
        any case); empty strings mean unset. Options the app lacks (``start_position``…)
        come as keyword arguments.

        Raises:
            ConfigurationError: An unknown key, or a bad value; the message names the key.
        """
        fields: dict[str, Any] = {}
        for key, value in posthog_keys(mapping).items():
            field = POSTHOG_KEYS[key]
            if value == "" and field != "additional_property_mappings":
                continue
            fields[field] = value
        missing = [
            key
            for key, field in POSTHOG_KEYS.items()
            if field in ("stream_name", "event_key") and field not in fields
        ]
        if missing:
            raise ConfigurationError(f"PostHog app setting {missing[0]!r} is required")
        try:
            return cls(**fields, **overrides)
        except ConfigurationError as exc:
            names = {field: key for key, field in POSTHOG_KEYS.items()}
            message = str(exc)
            for field, key in names.items():
                if message.startswith(field):
                    message = f"{key!r} ({message})"
                    break
            raise ConfigurationError(message) from None


#: The PostHog app's configuration key -> the ImporterSettings field.
POSTHOG_KEYS = {
    "kinesisStreamName": "stream_name",
    "iamAccessKeyId": "access_key_id",
    "iamSecretAccessKey": "secret_access_key",
    "awsRegion": "region",
    "eventKey": "event_key",
    "additionalPropertyMappings": "additional_property_mappings",
}

#: The names the PostHog app's settings page shows (and shorter ones users write) -> its key.
POSTHOG_NAMES = {
    "Kinesis Stream Name": "kinesisStreamName",
    "Stream Name": "kinesisStreamName",
    "Access Key ID": "iamAccessKeyId",
    "IAM Access Key ID": "iamAccessKeyId",
    "Secret Access Key": "iamSecretAccessKey",
    "IAM Secret Access Key": "iamSecretAccessKey",
    "AWS Region": "awsRegion",
    "Posthog event key": "eventKey",
    "Event Key": "eventKey",
    "Additional Kinesis to Posthog property mappings": "additionalPropertyMappings",
    "Additional Property Mappings": "additionalPropertyMappings",
}
_BY_NAME = {normalise(name): key for name, key in POSTHOG_NAMES.items()}


def posthog_keys(mapping: object) -> dict[str, object]:
    """The PostHog app's configuration with each setting under its key (a shown name taken).

    Raises:
        ConfigurationError: Not a mapping, an unknown setting (with a "did you mean"), or one
            setting given twice (by its key and by its name).
    """
    if not isinstance(mapping, Mapping):
        raise ConfigurationError(f"config must be a mapping, got {type(mapping).__name__}")
    out: dict[str, object] = {}
    for given, value in mapping.items():
        key = given if given in POSTHOG_KEYS else _BY_NAME.get(normalise(given))
        if key is None:
            hint = did_you_mean(given, [*POSTHOG_KEYS, *POSTHOG_NAMES])
            raise ConfigurationError(f"unknown PostHog app setting {given!r}{hint}")
        if key in out:
            raise ConfigurationError(f"PostHog app setting {key!r} is given twice ({given!r})")
        out[key] = value
    return out
