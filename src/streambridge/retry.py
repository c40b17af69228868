"""When to retry a failed call or record, and how long to wait.

Pure: the forwarder passes in its clock and random source. Throttling, ``ServiceUnavailable``,
``InternalFailure``, HTTP 5xx and 429, and connection errors are retried with capped exponential
backoff and full jitter, under both an attempt budget and a time budget. Everything else
(``ResourceNotFoundException``, ``InvalidArgumentException``, access and KMS errors…) is not:
retrying cannot fix it.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs

from streambridge.errors import ConfigurationError

__all__ = [
    "ACCESS_DENIED_CODES",
    "BAD_CREDENTIALS_CODES",
    "CONNECTION_ERROR",
    "PERMISSION_DENIED_CODES",
    "RETRYABLE_CODES",
    "THROTTLING_CODES",
    "RetryPolicy",
    "is_retryable",
]

#: streambridge's error code for a connection that failed or timed out (no answer at all).
CONNECTION_ERROR = "ConnectionError"

#: Error codes worth retrying: throttling and transient service faults.
RETRYABLE_CODES = frozenset(
    {
        "ServiceUnavailableException",
        "ServiceUnavailable",
        "InternalFailure",
        "InternalFailureException",
        "InternalServerError",
        "InternalError",
        "ThrottlingException",
        "Throttling",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "KMSThrottlingException",
        "SlowDown",
        "RequestTimeout",
        "RequestTimeoutException",
        "PriorRequestNotComplete",
        CONNECTION_ERROR,
    }
)

#: Kinesis's throttling codes (counted apart from other transient errors).
THROTTLING_CODES = frozenset({"ProvisionedThroughputExceededException", "KMSThrottlingException"})

#: Error codes meaning the principal lacks a permission (the credentials themselves are good).
PERMISSION_DENIED_CODES = frozenset(
    {"AccessDeniedException", "AccessDenied", "UnauthorizedOperation"}
)

#: Error codes meaning the credentials themselves are not accepted (unknown, expired, bad
#: signature, missing).
BAD_CREDENTIALS_CODES = frozenset(
    {
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "InvalidSignatureException",
        "SignatureDoesNotMatch",
        "ExpiredTokenException",
        "ExpiredToken",
        "MissingAuthenticationTokenException",
    }
)

#: Error codes meaning the credentials may not do this; never retried.
ACCESS_DENIED_CODES = PERMISSION_DENIED_CODES | BAD_CREDENTIALS_CODES


def is_retryable(code: str, http_status: int | None = None) -> bool:
    """Whether an error with this code (and HTTP status) is worth retrying.

    Args:
        code: The AWS error code, per call or per record.
        http_status: The HTTP status of the response, when known.
    """
    if code in RETRYABLE_CODES:
        return True
    if code in ACCESS_DENIED_CODES:
        return False
    return http_status is not None and (http_status >= 500 or http_status == 429)  # noqa: PLR2004


def _positive(inst: object, attribute: attrs.Attribute[float], value: object) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
        raise ConfigurationError(f"{attribute.name} must be a positive number, got {value!r}")


def _at_least_one(inst: object, attribute: attrs.Attribute[int], value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigurationError(f"{attribute.name} must be an integer >= 1, got {value!r}")


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """Capped exponential backoff with full jitter, under an attempt and a time budget.

    The wait before retry *n* (1-based) is ``uniform(0, min(max_delay, base_delay * 2**(n-1)))``
    ("full jitter"). A record is sent at most ``max_attempts`` times, and no retry starts once
    ``max_elapsed`` seconds have passed since the first attempt of the call (nor a wait that
    would end after it).

    Attributes:
        max_attempts: Sends per record, the first included (1 = never retry).
        base_delay: Seconds; the cap of the first wait.
        max_delay: Seconds; no single wait is longer.
        max_elapsed: Seconds from the first attempt after which no retry starts.
    """

    max_attempts: int = attrs.field(default=10, validator=_at_least_one)
    base_delay: float = attrs.field(default=0.1, validator=_positive)
    max_delay: float = attrs.field(default=10.0, validator=_positive)
    max_elapsed: float = attrs.field(default=120.0, validator=_positive)

    def delay(self, retry: int, random: Callable[[], float]) -> float:
        """The wait before retry number ``retry`` (1-based), drawn with ``random()`` in [0, 1)."""
        ceiling = min(self.max_delay, self.base_delay * 2.0 ** min(retry - 1, 62))
        return random() * ceiling

    def next_delay(self, retry: int, elapsed: float, random: Callable[[], float]) -> float | None:
        """The wait before retry ``retry``, or None when a budget forbids that retry.

        Args:
            retry: The number of the retry about to happen (1 for the first retry).
            elapsed: Seconds since the call's first attempt.
            random: A source of floats in [0, 1).
        """
        if retry >= self.max_attempts:
            return None
        wait = self.delay(retry, random)
        if elapsed + wait > self.max_elapsed:
            return None
        return wait
