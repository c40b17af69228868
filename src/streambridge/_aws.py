"""Building boto3 clients for the shells' ``from_settings`` constructors."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

__all__ = ["build_client", "error_details"]


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
