"""What both zero-code Lambda handlers read from the environment, in one place.

The importer's handler (:mod:`streambridge.importer.aws_lambda`) and the forwarder's
(:mod:`streambridge.forwarder.aws_lambda`) each declare their variables (name -> what it is
for); these helpers refuse an unknown ``STREAMBRIDGE_`` variable with a "did you mean", say
which required one is missing, read flags and the log level, and build a remote dead letter.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Generic, TypeVar

from streambridge._settings import did_you_mean
from streambridge.errors import ConfigurationError

__all__ = ["Configured", "check_variables", "dead_letter_from", "flag", "set_log_level"]

_T = TypeVar("_T")


def check_variables(
    env: Mapping[str, str], known: Mapping[str, str], required: Iterable[str]
) -> None:
    """Refuse an unknown ``STREAMBRIDGE_`` variable, or a required one that is missing.

    A misspelt variable would otherwise be ignored.

    Raises:
        ConfigurationError: The first such variable, with a "did you mean" or what it is for.
    """
    for name in env:
        if name.startswith("STREAMBRIDGE_") and name not in known:
            raise ConfigurationError(
                f"unknown environment variable {name}{did_you_mean(name, known)}"
            )
    for name in required:
        if not env.get(name, "").strip():
            raise ConfigurationError(f"{name} is not set ({known[name]})")


def flag(env: Mapping[str, str], name: str) -> bool:
    """A true/false variable (``true``/``1``/``yes``; unset is false)."""
    value = env.get(name, "false").strip().lower()
    if value not in ("true", "false", "1", "0", "yes", "no", ""):
        raise ConfigurationError(f"{name} must be 'true' or 'false', got {value!r}")
    return value in ("true", "1", "yes")


def set_log_level(env: Mapping[str, str], name: str = "STREAMBRIDGE_LOG_LEVEL") -> None:
    """Set the ``streambridge`` logger's level from ``name`` (INFO when unset)."""
    level = env.get(name, "INFO").strip().upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        msg = f"{name} must be DEBUG, INFO, WARNING or ERROR, got {level!r}"
        raise ConfigurationError(msg)
    logging.getLogger("streambridge").setLevel(level)


def dead_letter_from(env: Mapping[str, str], name: str = "STREAMBRIDGE_DEAD_LETTER") -> Any:
    """The remote dead letter ``name`` names (``s3://bucket/prefix`` or an SQS queue URL), or None.

    Raises:
        ConfigurationError: It names anything else (a Lambda's files do not outlive it).
    """
    spec = env.get(name, "").strip()
    if not spec:
        return None
    from streambridge.deadletter_remote import is_remote_target, remote_target  # noqa: PLC0415

    if not is_remote_target(spec):
        msg = (
            f"{name} must be s3://bucket/prefix or an SQS queue URL, got {spec!r} (a Lambda's "
            f"files do not outlive it)"
        )
        raise ConfigurationError(msg)
    import boto3  # noqa: PLC0415 - in every Lambda runtime

    client: Any = boto3.client
    return remote_target(spec, client)


class Configured(Generic[_T]):
    """A handler built from the environment on first use, then kept (one per process).

    A bad configuration raises on every invocation, so the event is retried, not dropped,
    once the configuration is fixed.
    """

    def __init__(self, build: Callable[[], _T]) -> None:
        """Build with ``build`` when first asked."""
        self._build = build
        self._made: list[_T] = []

    def get(self) -> _T:
        """The handler, built now if it was not yet."""
        if not self._made:
            self._made.append(self._build())
        return self._made[0]
