"""Building boto3 clients for the shells' ``from_settings`` constructors."""

from __future__ import annotations

from typing import Any, Protocol

from botocore.exceptions import ClientError
from botocore.parsers import ResponseParserError

from streambridge.errors import (
    AccessDeniedError,
    DeliveryError,
    MalformedAnswerError,
    StreamNotFoundError,
)
from streambridge.retry import ACCESS_DENIED_CODES

__all__ = [
    "PARSER_ERRORS",
    "build_client",
    "client_for",
    "error_details",
    "fatal_error",
    "unparsable",
]

#: What botocore's parser raises on a body of the wrong shape: it wraps only some cases in
#: ResponseParserError (a list member that is a string, for one, raises AttributeError).
PARSER_ERRORS = (ResponseParserError, AttributeError, TypeError, ValueError, KeyError, IndexError)


def unparsable(operation: str, exc: Exception) -> MalformedAnswerError:
    """The error for an answer botocore could not parse: its outcome is unknown."""
    return MalformedAnswerError(
        f"{operation} answered with a body that could not be parsed "
        f"({type(exc).__name__}: {exc}): the outcome is unknown, so it is treated as not done "
        f"(retried)",
        operation=operation,
    )


class _ClientSettings(Protocol):
    """What ForwarderSettings and ImporterSettings both carry for building a client."""

    @property
    def region(self) -> str | None: ...
    @property
    def access_key_id(self) -> str | None: ...
    @property
    def secret_access_key(self) -> str | None: ...


def client_for(
    service: str, settings: _ClientSettings, *, session: Any = None, endpoint_url: str | None = None
) -> Any:
    """A client built from settings' region and optional keys (for ``from_settings``)."""
    return build_client(
        service,
        region=settings.region,
        access_key_id=settings.access_key_id,
        secret_access_key=settings.secret_access_key,
        session=session,
        endpoint_url=endpoint_url,
    )


def error_details(exc: ClientError) -> tuple[str, str, int | None]:
    """A ClientError's AWS error code, message and HTTP status."""
    error = exc.response.get("Error", {})
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return (
        str(error.get("Code", "Unknown")),
        str(error.get("Message", "")),
        int(status) if status is not None else None,
    )


def build_client(
    service: str,
    *,
    region: str | None,
    access_key_id: str | None,
    secret_access_key: str | None,
    session: Any = None,
    endpoint_url: str | None = None,
) -> Any:
    """A boto3 client with botocore's own retries off (streambridge retries itself)."""
    import boto3  # noqa: PLC0415 - only the convenience constructors need boto3 imported here
    from botocore.config import Config  # noqa: PLC0415

    session = session or boto3.Session()
    return session.client(
        service,
        region_name=region,
        endpoint_url=endpoint_url,
        aws_access_key_id=access_key_id,
        aws_secret_access_key=secret_access_key,
        config=Config(retries={"mode": "standard", "total_max_attempts": 1}),
    )


def fatal_error(
    exc: Exception,
    *,
    operation: str,
    resource: str,
    region: str | None,
    not_found_hint: str,
    permission: str,
    permission_hint: str = "",
) -> DeliveryError:
    """Turn an error retrying cannot fix into the DeliveryError that says what to do.

    Args:
        exc: A ClientError, or a botocore error without a response (no credentials…).
        operation: The API operation that failed (``"PutRecordBatch"``…).
        resource: What it was called on, for messages (``"delivery stream 'events'"``).
        region: The client's region.
        not_found_hint: What to do when the resource does not exist.
        permission: The IAM action to allow when access is denied.
        permission_hint: More advice for the access-denied message.
    """
    if isinstance(exc, ClientError):
        code, message, _ = error_details(exc)
    else:
        code, message = type(exc).__name__, str(exc)
    if code == "ResourceNotFoundException":
        return StreamNotFoundError(
            f"{resource} was not found in region {region} for these credentials: "
            f"{not_found_hint} ({message})",
            error_code=code,
        )
    if code in ACCESS_DENIED_CODES:
        return AccessDeniedError(
            f"{operation} on {resource} was denied ({code}): allow {permission!r}"
            f"{permission_hint}. AWS said: {message}",
            error_code=code,
        )
    return DeliveryError(
        f"{operation} on {resource} failed with {code}, which retrying cannot fix: {message}",
        error_code=code,
    )
