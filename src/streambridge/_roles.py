"""Across accounts: a role assumed with an External ID, its credentials refreshed as they age.

Every peer our users compare us with (the KCL, Fluent Bit, Vector, mParticle's own Kinesis and
S3 outputs) reaches a stream in another account by assuming a role there, with an External ID
that the role's trust policy requires. :func:`role_session` builds a boto3 session that does
it with botocore's own machinery, the one a ``role_arn`` profile uses
(``AssumeRoleCredentialFetcher``, ``DeferredRefreshableCredentials``): the credentials are
fetched once at once, so a refusal is said before any record is read, and then again before
they expire (botocore refreshes them 15 minutes ahead), so a long run never stops on them.
"""

from __future__ import annotations

from typing import Any

import attrs

from streambridge.errors import AccessDeniedError, ConfigurationError

__all__ = ["AssumedRole", "role_session"]

#: What the role's session is called in CloudTrail when nothing else is said.
DEFAULT_SESSION_NAME = "streambridge"


@attrs.frozen
class AssumedRole:
    """A role to assume before calling AWS.

    Attributes:
        role_arn: The role (``arn:aws:iam::<account>:role/<name>``).
        external_id: The External ID its trust policy requires (kept out of ``repr``).
        session_name: The role session's name (CloudTrail shows it).
        duration: Seconds each set of credentials lasts (900 to the role's maximum).
    """

    role_arn: str
    external_id: str | None = attrs.field(default=None, repr=False)
    session_name: str = DEFAULT_SESSION_NAME
    duration: int = 3600

    def __attrs_post_init__(self) -> None:
        """Check the ARN's shape and the duration, before any call."""
        if not self.role_arn.startswith("arn:") or ":role/" not in self.role_arn:
            shape = "arn:aws:iam::<account>:role/<name>"
            msg = f"role_arn must be an IAM role ARN ({shape}), got {self.role_arn!r}"
            raise ConfigurationError(msg)
        if not 900 <= self.duration <= 43_200:  # noqa: PLR2004 - STS's bounds
            raise ConfigurationError(f"duration must be 900..43200 seconds, got {self.duration}")


def role_session(
    source: Any, role: AssumedRole, *, region: str | None, endpoint_url: str | None = None
) -> Any:
    """A boto3 session whose credentials are ``role``'s, assumed with ``source``'s.

    Args:
        source: The boto3 session whose credentials assume the role (keys, a profile, the
            environment's role).
        role: The role, its External ID and session name.
        region: The region of the clients (and of the STS endpoint).
        endpoint_url: Another endpoint for STS too (a local AWS); None: AWS's regional STS.

    Raises:
        ConfigurationError: ``source`` has no credentials.
        AccessDeniedError: STS refused (the trust policy, the External ID, ``sts:AssumeRole``
            not allowed); the message says what the trust policy must hold.
    """
    import boto3  # noqa: PLC0415 - the convenience constructors only
    import botocore.session  # noqa: PLC0415
    from botocore.credentials import (  # noqa: PLC0415
        AssumeRoleCredentialFetcher,
        CredentialProvider,
        DeferredRefreshableCredentials,
    )
    from botocore.exceptions import ClientError  # noqa: PLC0415

    from streambridge._wire import fast_clients  # noqa: PLC0415

    credentials = source.get_credentials()
    if credentials is None:
        msg = f"no AWS credentials to assume {role.role_arn} with (keys, a profile or a role)"
        raise ConfigurationError(msg)

    def sts(service: str, **keys: Any) -> Any:
        return source.client(service, region_name=region, endpoint_url=endpoint_url, **keys)

    extra: dict[str, Any] = {"RoleSessionName": role.session_name, "DurationSeconds": role.duration}
    if role.external_id:
        extra["ExternalId"] = role.external_id
    fetcher = AssumeRoleCredentialFetcher(sts, credentials, role.role_arn, extra_args=extra)
    refreshing = DeferredRefreshableCredentials(
        method="assume-role", refresh_using=fetcher.fetch_credentials
    )
    try:
        refreshing.get_frozen_credentials()  # now: a refusal is said before anything is read
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code, message = error.get("Code", "Unknown"), error.get("Message", "")
        condition = (
            " with sts:ExternalId equal to the External ID given" if role.external_id else ""
        )
        msg = (
            f"cannot assume role {role.role_arn} ({code}: {message}): its trust policy must "
            f"allow this identity sts:AssumeRole{condition}, and this identity's policy must "
            f"allow sts:AssumeRole on it (streambridge.iam.trust_policy gives the trust policy)"
        )
        raise AccessDeniedError(msg, error_code=code) from None

    class Assumed(CredentialProvider):
        METHOD = "assume-role"
        CANONICAL_NAME = "streambridge-assume-role"

        def load(self) -> Any:
            return refreshing

    botocore_session = fast_clients(botocore.session.get_session())
    botocore_session.get_component("credential_provider").insert_before("env", Assumed())
    return boto3.Session(botocore_session=botocore_session, region_name=region)
