"""The forwarder's settings: mParticle's "Amazon Kinesis Firehose" connection page, validated.

:class:`ForwarderSettings` has one field per setting on the connection page, with mParticle's
defaults; :meth:`ForwarderSettings.from_mparticle` reads them as mParticle shows them (display
names, ``"True"``/``"False"`` strings). Strict: an unknown name or a bad value raises
:class:`~streambridge.errors.ConfigurationError` naming it, never echoing a credential.
:data:`DISPLAY_NAMES` maps each display name to its field; ``docs/architecture.md`` names the
code each setting drives.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, Literal

import attrs
import cattrs
from typing_extensions import Self

from streambridge._settings import SECRET_FIELDS, did_you_mean, normalise, optional_str, region
from streambridge.errors import ConfigurationError
from streambridge.forwarder.exclusion import parse_selectors

__all__ = ["DISPLAY_NAMES", "ForwarderSettings", "PutMode"]

#: How records are put: ``"auto"`` (``PutRecordBatch``, and ``PutRecord`` from the moment
#: ``PutRecordBatch`` is denied), ``"batch"`` (``PutRecordBatch`` only) or ``"single"``
#: (``PutRecord`` only).
PutMode = Literal["auto", "batch", "single"]

_STREAM_NAME = re.compile(r"[a-zA-Z0-9_.-]{1,64}")


def _bool(inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, bool):
        raise ConfigurationError(
            f"{attribute.name} must be True or False, got {value!r} ({type(value).__name__})"
        )


def _stream_name(inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str) or not _STREAM_NAME.fullmatch(value):
        raise ConfigurationError(
            f"delivery_stream_name must be 1-64 characters of letters, digits, '_', '.' or '-',"
            f" got {value!r}"
        )


def _selectors(value: object) -> tuple[str, ...]:
    """Accept a comma-separated string or an iterable of strings; validate every selector."""
    if value is None:
        return ()
    items: Iterable[object]
    if isinstance(value, str):
        items = (part for part in value.split(","))
    elif isinstance(value, Iterable):
        items = value
    else:
        raise ConfigurationError(
            f"metadata_field_exclusion must be a list of field names or a comma-separated string,"
            f" got {value!r}"
        )
    cleaned: list[str] = []
    for item in items:
        if not isinstance(item, str):
            msg = f"metadata_field_exclusion entries must be strings, got {item!r}"
            raise ConfigurationError(msg)
        if item.strip():
            cleaned.append(item.strip())
    parse_selectors(cleaned)  # raises ConfigurationError naming a bad selector
    return tuple(cleaned)


def _bool_field(*, default: bool) -> Any:
    return attrs.field(default=default, validator=_bool)


@attrs.frozen(kw_only=True)
class ForwarderSettings:
    """The connection settings of mParticle's "Amazon Kinesis Firehose" event integration.

    Every field has mParticle's default, except :attr:`include_event_batch_location`,
    which mParticle's page lists with default False, like the other "include" switches.
    Credentials are optional (a boto3 client normally brings its own) and never appear in
    ``repr``, logs or error messages.

    The effect of each setting is documented in ``docs/forwarder.md``; the short version:

    Attributes:
        delivery_stream_name: The Firehose delivery stream (Direct PUT) to write to.
        region: "AWS Region Endpoint"; used by :meth:`FirehoseForwarder.from_settings`.
        unique_id: When set, written to each batch's top-level ``unique_id``.
        send_lifecycle_events: ``session_start``, ``session_end``, ``application_state_transition``.
        send_screen_views: ``screen_view``.
        send_crash_events: ``crash_report``.
        send_network_performance_events: ``network_performance``.
        send_custom_events: ``custom_event``.
        send_push_registrations_and_receipts: ``push_registration``, ``push_message``,
            ``push_reaction``.
        send_as_batch: One record per batch; when False, one record per event.
        wait_for_complete_batch: Buffer each session's batches until ``session_end``.
        include_location_information: Keep ``events[].data.location``.
        include_event_batch_location: Keep ``context.location``.
        send_profile_change_events: ``profile`` (deprecated by mParticle; kept for compatibility).
        send_commerce_events: ``commerce_event``.
        include_metadata: Keep ``application_info``, ``device_info``, ``source_info``.
        include_user_attribute_change_events: ``user_attribute_change``.
        include_user_identity_change_events: ``user_identity_change``.
        send_batches_without_events: Send a batch left with no events (checked after filtering).
        include_mp_deviceid: Keep top-level ``mp_deviceid``.
        metadata_field_exclusion: Fields to remove: ``"Device Name"``, ``"IP Address"`` or dotted
            paths such as ``"device_info.ios_advertising_id"``.
        access_key_id: Optional IAM access key id (never printed).
        secret_access_key: Optional IAM secret access key (never printed).
        role_arn: A role to assume (in another account) before calling AWS, with the keys
            above or the environment's credentials; refreshed before it expires.
        external_id: The External ID the role's trust policy requires (not printed).
        role_session_name: The role session's name (CloudTrail; default ``streambridge``).
    """

    delivery_stream_name: str = attrs.field(validator=_stream_name)
    region: str = attrs.field(default="us-east-1", validator=region)
    unique_id: str | None = attrs.field(default=None, validator=optional_str)
    send_lifecycle_events: bool = _bool_field(default=True)
    send_screen_views: bool = _bool_field(default=True)
    send_crash_events: bool = _bool_field(default=True)
    send_network_performance_events: bool = _bool_field(default=True)
    send_custom_events: bool = _bool_field(default=True)
    send_push_registrations_and_receipts: bool = _bool_field(default=True)
    send_as_batch: bool = _bool_field(default=True)
    wait_for_complete_batch: bool = _bool_field(default=False)
    include_location_information: bool = _bool_field(default=True)
    include_event_batch_location: bool = _bool_field(default=False)
    send_profile_change_events: bool = _bool_field(default=True)
    send_commerce_events: bool = _bool_field(default=True)
    include_metadata: bool = _bool_field(default=True)
    include_user_attribute_change_events: bool = _bool_field(default=False)
    include_user_identity_change_events: bool = _bool_field(default=False)
    send_batches_without_events: bool = _bool_field(default=True)
    include_mp_deviceid: bool = _bool_field(default=False)
    metadata_field_exclusion: tuple[str, ...] = attrs.field(default=(), converter=_selectors)
    access_key_id: str | None = attrs.field(default=None, repr=False, validator=optional_str)
    secret_access_key: str | None = attrs.field(default=None, repr=False, validator=optional_str)
    role_arn: str | None = attrs.field(default=None, validator=optional_str)
    external_id: str | None = attrs.field(default=None, repr=False, validator=optional_str)
    role_session_name: str | None = attrs.field(default=None, validator=optional_str)

    @classmethod
    def from_mparticle(cls, mapping: Mapping[str, object]) -> Self:
        """Build settings from mParticle's display names and values.

        Names are matched ignoring case and extra spaces (``"Send as Batch"``,
        ``"AWS Region Endpoint"``…); the attribute names (``"send_as_batch"``) are accepted
        too. Boolean settings take ``True``/``False`` or the strings ``"True"``/``"False"``.
        An empty string means "unset" for the text settings.

        Args:
            mapping: Setting name to value, as mParticle's UI or API shows them.

        Returns:
            The validated settings.

        Raises:
            ConfigurationError: A name is unknown, a value has the wrong type, or a value is
                invalid; the message names the setting.
        """
        if not isinstance(mapping, Mapping):
            raise ConfigurationError(f"settings must be a mapping, got {type(mapping).__name__}")
        fields: dict[str, object] = {}
        for name, value in mapping.items():
            field = _field_for(name)
            if field in fields:
                raise ConfigurationError(f"setting {name!r} is given twice")
            fields[field] = value
        try:
            return _CONVERTER.structure(fields, cls)
        except cattrs.ClassValidationError as group:
            raise _first_configuration_error(group) from None


# Display name (as on mParticle's connection page) -> attribute name.
DISPLAY_NAMES: Mapping[str, str] = {
    "Delivery Stream Name": "delivery_stream_name",
    "AWS Region Endpoint": "region",
    "Unique ID": "unique_id",
    "Send Lifecycle Events": "send_lifecycle_events",
    "Send Screen Views": "send_screen_views",
    "Send Crash Events": "send_crash_events",
    "Send Network Performance Events": "send_network_performance_events",
    "Send Custom Events": "send_custom_events",
    "Send Push Registrations and Receipts": "send_push_registrations_and_receipts",
    "Send as Batch": "send_as_batch",
    "Wait for Complete Batch": "wait_for_complete_batch",
    "Include Location Information": "include_location_information",
    "Include Event Batch Location": "include_event_batch_location",
    "Send Profile Change Events": "send_profile_change_events",
    "Send Commerce Events": "send_commerce_events",
    "Include Metadata": "include_metadata",
    "Include User Attribute Change Events": "include_user_attribute_change_events",
    "Include User Identity Change Events": "include_user_identity_change_events",
    "Send Batches without Events": "send_batches_without_events",
    "Include MP DeviceId": "include_mp_deviceid",
    "Metadata Field Exclusion": "metadata_field_exclusion",
    "Access Key ID": "access_key_id",
    "Secret Access Key": "secret_access_key",
    # streambridge's own (mParticle's Firehose page has no role): across accounts
    "Role ARN": "role_arn",
    "External ID": "external_id",
    "Role Session Name": "role_session_name",
}
_FIELD_TO_DISPLAY = {field: display for display, field in DISPLAY_NAMES.items()}


_LOOKUP = {normalise(display): field for display, field in DISPLAY_NAMES.items()} | {
    normalise(field): field for field in DISPLAY_NAMES.values()
}


def _field_for(name: object) -> str:
    if not isinstance(name, str):
        raise ConfigurationError(f"setting names must be strings, got {name!r}")
    field = _LOOKUP.get(normalise(name))
    if field is None:
        raise ConfigurationError(f"unknown setting {name!r}{did_you_mean(name, DISPLAY_NAMES)}")
    return field


def _structure_bool(value: object, _: type) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().casefold() in {"true", "false"}:
        return value.strip().casefold() == "true"
    raise ConfigurationError(
        f"expected True or False (or the strings 'True'/'False'), got {value!r}"
    )


def _structure_optional_str(value: object, _: type) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value or None  # mParticle shows an unset text setting as an empty string
    raise ConfigurationError(f"expected a string, got a {type(value).__name__}")


def _structure_str(value: object, _: type) -> str:
    if isinstance(value, str):
        return value
    raise ConfigurationError(f"expected a string, got a {type(value).__name__}")


def _structure_selectors(value: object, _: type) -> tuple[str, ...]:
    return _selectors(value)


_CONVERTER = cattrs.Converter(forbid_extra_keys=True, detailed_validation=True)
_CONVERTER.register_structure_hook(bool, _structure_bool)
_CONVERTER.register_structure_hook(str, _structure_str)
_CONVERTER.register_structure_hook_func(lambda t: t == (str | None), _structure_optional_str)
_CONVERTER.register_structure_hook_func(lambda t: t == tuple[str, ...], _structure_selectors)


def _first_configuration_error(group: cattrs.ClassValidationError) -> ConfigurationError:
    """Turn cattrs' grouped errors into one message naming every bad setting."""
    with_notes, others = group.group_exceptions()
    problems = []
    for exc, note in with_notes:
        field = note.name
        display = _FIELD_TO_DISPLAY.get(field, field)
        if isinstance(exc, KeyError):
            detail = "is required"
        elif field in SECRET_FIELDS:
            detail = "must be a string"  # never echo anything about a credential's value
        else:
            detail = str(exc)
        problems.append(f"{display!r} ({field}) {detail}")
    problems.extend(str(exc) for exc in others)
    return ConfigurationError("invalid setting: " + "; ".join(problems))
