"""What both halves' settings share: validators for credentials and regions, name matching.

Pure: no I/O. Every check raises :class:`~streambridge.errors.ConfigurationError` naming the
setting, and never echoes a credential's value.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import attrs

from streambridge.errors import ConfigurationError

__all__ = [
    "SECRET_FIELDS",
    "did_you_mean",
    "normalise",
    "optional_region",
    "optional_str",
    "region",
]

_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d{1,2}")
#: Fields whose values are never shown, in ``repr`` or in a message.
SECRET_FIELDS = frozenset({"access_key_id", "secret_access_key", "external_id"})


def optional_str(inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """Attrs validator: a string or None (a credential's value is never shown)."""
    if value is not None and not isinstance(value, str):
        shown = "a value" if attribute.name in SECRET_FIELDS else repr(value)
        raise ConfigurationError(f"{attribute.name} must be a string or None, got {shown}")


def region(inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """Attrs validator: an AWS region name such as ``us-east-1``."""
    if not isinstance(value, str) or not _REGION.fullmatch(value):
        raise ConfigurationError(
            f"region must be an AWS region name such as 'us-east-1', got {value!r}"
        )


def optional_region(inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """Attrs validator: a region name, or None (boto3's default region)."""
    if value is not None:
        region(inst, attribute, value)


def normalise(name: object) -> str:
    """A setting name for matching: case, underscores and runs of spaces ignored."""
    return " ".join(str(name).replace("_", " ").split()).casefold()


def did_you_mean(name: object, choices: Iterable[str]) -> str:
    """``"; did you mean 'X'?"`` for the closest of ``choices``, or ``""``."""
    import difflib  # noqa: PLC0415 - only when a name is wrong

    close = difflib.get_close_matches(str(name), list(choices), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""
