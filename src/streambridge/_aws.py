"""botocore at the edge: building clients, and one mapping from botocore errors to outcomes.

Shared by both shells. :func:`attempt` makes one call and reads its answer; whatever goes
wrong comes back as a :class:`CallError` value — code, message, HTTP status and whether
retrying can help — decided here once for every operation: AWS error answers
(``ClientError``), connections that fail or time out, bodies botocore cannot parse and answers
the reader does not believe (both "malformed": the outcome is unknown), and other botocore
errors (no credentials, invalid parameters: not retryable). :func:`fatal_error` turns a
:class:`CallError` that retrying cannot fix into the :class:`~streambridge.errors.DeliveryError`
that says what to do.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, TypeVar

import attrs
from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError
from botocore.parsers import ResponseParserError
from typing_extensions import Self

from streambridge._wire import fast_clients
from streambridge.errors import (
    AccessDeniedError,
    ConfigurationError,
    DeliveryError,
    MalformedAnswerError,
    StreamNotFoundError,
)
from streambridge.retry import (
    ACCESS_DENIED_CODES,
    BAD_CREDENTIALS_CODES,
    CONNECTION_ERROR,
    PERMISSION_DENIED_CODES,
    is_retryable,
)

if TYPE_CHECKING:
    from streambridge._roles import AssumedRole

__all__ = [
    "MAX_IN_FLIGHT",
    "PARSER_ERRORS",
    "CallError",
    "ClientShell",
    "attempt",
    "build_client",
    "client_error",
    "client_for",
    "error_details",
    "fatal_error",
    "within_pool",
]

T = TypeVar("T")

#: Both shells' default for calls in flight at once, and the connection pool of the clients
#: built here (botocore's default pool is 10).
MAX_IN_FLIGHT = 16


def within_pool(client: Any, wanted: int, logger: logging.Logger) -> int:
    """``wanted`` calls in flight, at most as many as ``client`` keeps connections for.

    A boto3 client keeps ``max_pool_connections`` connections (botocore's default: 10). A call
    beyond that opens a connection of its own — a new TLS handshake on AWS — which urllib3
    then throws away with a "Connection pool is full" warning, every time. So an injected
    client's pool caps the calls in flight; build it with
    ``Config(max_pool_connections=N)`` for more. A client without a readable pool size (a
    stand-in) is not capped.
    """
    config = getattr(getattr(client, "meta", None), "config", None)
    pool = getattr(config, "max_pool_connections", None)
    if isinstance(pool, int) and not isinstance(pool, bool) and 0 < pool < wanted:
        logger.info(
            "%d calls in flight capped at the client's %d pooled connections; build the "
            "client with botocore Config(max_pool_connections=%d) for more",
            wanted,
            pool,
            wanted,
        )
        return pool
    return wanted


#: What botocore's parser raises on a body of the wrong shape: it wraps only some cases in
#: ResponseParserError (a list member that is a string, for one, raises AttributeError).
PARSER_ERRORS = (ResponseParserError, AttributeError, TypeError, ValueError, KeyError, IndexError)


@attrs.frozen
class CallError:
    """A call that gave no usable answer, and whether retrying it can help.

    Attributes:
        operation: The API operation (``"PutRecordBatch"``…).
        code: The AWS error code; ``"ConnectionError"``, ``"MalformedAnswer"``, or the botocore
            exception's name for errors without an answer.
        message: What went wrong.
        status: The HTTP status, when there was an answer.
        retryable: Whether the same call may succeed later.
        error: The exception behind it.
    """

    operation: str
    code: str
    message: str
    status: int | None
    retryable: bool
    error: Exception

    @property
    def malformed(self) -> bool:
        """Whether there was an answer that could not be believed (the outcome is unknown)."""
        return self.code == MalformedAnswerError.code

    @property
    def denied(self) -> bool:
        """Whether the principal lacks a permission for the operation (its credentials are good)."""
        return self.code in PERMISSION_DENIED_CODES

    @property
    def connection(self) -> bool:
        """Whether the endpoint could not be reached (or did not answer in time)."""
        return self.code == CONNECTION_ERROR


def client_error(exc: ClientError, operation: str) -> CallError:
    """An AWS error answer as a :class:`CallError`."""
    code, message, status = error_details(exc)
    return CallError(
        operation, code, message, status, retryable=is_retryable(code, status), error=exc
    )


def attempt(
    call: Callable[..., Any], operation: str, read: Callable[[Any], T], /, **params: Any
) -> T | CallError:
    """Make one call and read its answer with ``read``; a failure comes back as a value.

    Args:
        call: The client method (``client.put_record_batch``).
        operation: Its API name, for messages.
        read: Turns the parsed answer into what the caller needs; raises
            :class:`~streambridge.errors.MalformedAnswerError` when it is not well formed.
        **params: The call's parameters.
    """
    try:
        response = call(**params)
    except ClientError as exc:
        return client_error(exc, operation)
    except (BotoConnectionError, HTTPClientError) as exc:
        return CallError(operation, CONNECTION_ERROR, str(exc), None, retryable=True, error=exc)
    except BotoCoreError as exc:  # no credentials, invalid parameters…: nothing to retry
        return CallError(operation, type(exc).__name__, str(exc), None, retryable=False, error=exc)
    except PARSER_ERRORS as exc:
        return _malformed(MalformedAnswerError.unparsable(operation, exc))
    try:
        return read(response)
    except MalformedAnswerError as exc:
        return _malformed(exc)


def _malformed(exc: MalformedAnswerError) -> CallError:
    return CallError(exc.operation, exc.code, str(exc), None, retryable=True, error=exc)


class _ClientSettings(Protocol):
    """What ForwarderSettings and ImporterSettings both carry for building a client."""

    @property
    def region(self) -> str | None: ...
    @property
    def access_key_id(self) -> str | None: ...
    @property
    def secret_access_key(self) -> str | None: ...
    @property
    def role_arn(self) -> str | None: ...
    @property
    def external_id(self) -> str | None: ...
    @property
    def role_session_name(self) -> str | None: ...


def client_for(
    service: str,
    settings: _ClientSettings,
    *,
    session: Any = None,
    endpoint_url: str | None = None,
    pool: int = MAX_IN_FLIGHT,
) -> Any:
    """A client built from settings' region and optional keys (for ``from_settings``)."""
    return build_client(
        service,
        region=settings.region,
        access_key_id=settings.access_key_id,
        secret_access_key=settings.secret_access_key,
        session=session,
        endpoint_url=endpoint_url,
        pool=pool,
        role=assumed_role(settings.role_arn, settings.external_id, settings.role_session_name),
    )


def assumed_role(
    role_arn: str | None, external_id: str | None, session_name: str | None
) -> AssumedRole | None:
    """The role to assume, from settings or options (None: no role)."""
    if not role_arn:
        if external_id:
            raise ConfigurationError("an External ID is given without a role ARN to assume")
        return None
    from streambridge._roles import DEFAULT_SESSION_NAME, AssumedRole  # noqa: PLC0415

    return AssumedRole(role_arn, external_id or None, session_name or DEFAULT_SESSION_NAME)


S = TypeVar("S", bound=_ClientSettings)


class ClientShell(Generic[S]):
    """What both shells share: being built, client included, from their settings."""

    #: The boto3 service name (``"firehose"``, ``"kinesis"``).
    service: ClassVar[str]

    def __init__(
        self,
        client: Any,
        settings: S,
        *,
        sleep: Callable[[float], object],
        clock: Callable[[], float],
        random: Callable[[], float],
        **options: Any,
    ) -> None:
        """Take the client, the settings and the sources of time and jitter (tests fake them)."""
        self.client = client
        self.settings = settings
        self._sleep = sleep
        self._clock = clock
        self._random = random

    @classmethod
    def from_settings(
        cls,
        settings: S,
        *,
        session: Any = None,
        endpoint_url: str | None = None,
        **options: Any,
    ) -> Self:
        """Build the boto3 client from the settings (region, optional keys), then the shell.

        The client has botocore's retries off, since the shells retry themselves.

        Args:
            settings: The settings; ``region`` and the optional keys are used.
            session: A ``boto3.Session`` to build the client from (default: a new one).
            endpoint_url: Another endpoint, e.g. a local AWS stand-in.
            **options: Passed on to the class.
        """
        pool = max(int(options.get("max_in_flight", MAX_IN_FLIGHT)), 1)
        client = client_for(
            cls.service, settings, session=session, endpoint_url=endpoint_url, pool=pool
        )
        return cls(client, settings, **options)


_XML_CODE = re.compile(r"<Code>([^<]*)</Code>")
_XML_MESSAGE = re.compile(r"<Message>([^<]*)</Message>")
_FORBIDDEN = 403


def error_details(exc: ClientError) -> tuple[str, str, int | None]:
    """A ClientError's AWS error code, message and HTTP status.

    An error body botocore could not read as this service's JSON — an XML ``ErrorResponse``
    (what IAM enforcement in front of a JSON service may answer), or none at all — leaves
    botocore with the HTTP status as the code and the raw body as the message; the code and
    message are then read from the XML, and a 403 without either counts as ``AccessDenied``.
    """
    error = exc.response.get("Error", {})
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    code, message = str(error.get("Code", "Unknown")), str(error.get("Message", ""))
    if message.lstrip().startswith("<"):
        found_code, found_message = _XML_CODE.search(message), _XML_MESSAGE.search(message)
        if found_code is not None:
            code = found_code.group(1).strip()
        message = found_message.group(1).strip() if found_message is not None else message
    if status == _FORBIDDEN and (code.isdigit() or code in ("Forbidden", "Unknown")):
        code, message = "AccessDenied", f"HTTP 403 without an AWS error ({message or 'no body'})"
    return code, message, int(status) if status is not None else None


def build_client(
    service: str,
    *,
    region: str | None,
    access_key_id: str | None,
    secret_access_key: str | None,
    session: Any = None,
    endpoint_url: str | None = None,
    pool: int = MAX_IN_FLIGHT,
    attempts: int = 1,
    role: AssumedRole | None = None,
) -> Any:
    """A boto3 client with botocore's own retries off (streambridge retries itself).

    It keeps ``pool`` connections, one for each call the shells keep in flight. ``attempts``
    above 1 turns botocore's standard retries on (for calls streambridge does not retry: the
    S3 source's listing and reads). With ``role``, the client's credentials are the role's,
    assumed with the keys (or the session's credentials) and refreshed before they expire.
    """
    import boto3  # noqa: PLC0415 - only the convenience constructors need boto3 imported here
    import botocore.session  # noqa: PLC0415
    from botocore.config import Config  # noqa: PLC0415

    if session is None:  # ours: its clients read answers faster (a session given is left be)
        session = boto3.Session(botocore_session=fast_clients(botocore.session.get_session()))
    if role is not None:
        from streambridge._roles import role_session  # noqa: PLC0415 - when asked for

        if access_key_id:  # the keys given assume the role
            session = boto3.Session(
                aws_access_key_id=access_key_id,
                aws_secret_access_key=secret_access_key,
                botocore_session=fast_clients(botocore.session.get_session()),
            )
        session = role_session(session, role, region=region, endpoint_url=endpoint_url)
        access_key_id = secret_access_key = None
    return session.client(
        service,
        region_name=region,
        endpoint_url=endpoint_url,
        aws_access_key_id=access_key_id,
        aws_secret_access_key=secret_access_key,
        config=Config(
            retries={"mode": "standard", "total_max_attempts": attempts},
            max_pool_connections=pool,
        ),
    )


def fatal_error(
    failure: CallError,
    *,
    resource: str,
    region: str | None,
    not_found_hint: str,
    permission: str,
    permission_hint: str = "",
) -> DeliveryError:
    """Turn a failure retrying cannot fix into the DeliveryError that says what to do.

    Args:
        failure: What the call gave.
        resource: What it was called on, for messages (``"delivery stream 'events'"``).
        region: The client's region.
        not_found_hint: What to do when the resource does not exist.
        permission: The IAM action to allow when access is denied.
        permission_hint: More advice for the access-denied message.
    """
    code, message, operation = failure.code, failure.message, failure.operation
    if failure.connection:  # given up on: no call to this endpoint ever got an answer
        return DeliveryError(
            f"could not reach {resource}: {operation} never got an answer within the retry "
            f"budget ({message}); check the endpoint, the network or the proxy",
            error_code=code,
        )
    if code == "ResourceNotFoundException":
        return StreamNotFoundError(
            f"{resource} was not found in region {region} for these credentials: "
            f"{not_found_hint} ({message})",
            error_code=code,
        )
    if code in BAD_CREDENTIALS_CODES:
        return AccessDeniedError(
            f"{operation} on {resource} was refused ({code}): the credentials are not valid "
            f"here (unknown, expired or wrongly signed): check the access key, the session "
            f"token and the clock. AWS said: {message}",
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
