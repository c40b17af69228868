"""Unit tests of streambridge.retry: classification and backoff."""

from __future__ import annotations

import pytest

from streambridge import ConfigurationError, RetryPolicy
from streambridge.retry import is_retryable


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        ("ServiceUnavailableException", 500, True),
        ("InternalFailure", None, True),
        ("ThrottlingException", 400, True),
        ("KMSThrottlingException", 400, True),
        ("ConnectionError", None, True),
        ("500", 500, True),  # moto's HTML error page
        ("SomethingNew", 503, True),
        ("SomethingNew", 429, True),
        ("ResourceNotFoundException", 400, False),
        ("InvalidArgumentException", 400, False),
        ("InvalidKMSResourceException", 400, False),
        ("InvalidSourceException", 400, False),
        ("AccessDeniedException", 400, False),
        ("AccessDeniedException", 500, False),
        ("SomethingNew", 400, False),
        ("SomethingNew", None, False),
    ],
)
def test_is_retryable(code: str, status: int | None, expected: bool) -> None:
    """Throttling, transient faults and 5xx retry; client errors and access errors do not."""
    assert expected == is_retryable(code, status)


def test_delay_is_capped_exponential_with_full_jitter() -> None:
    """The wait is random() times min(cap, base * 2**(n-1))."""
    policy = RetryPolicy(base_delay=0.5, max_delay=4.0)
    assert [0.5, 1.0, 2.0, 4.0, 4.0, 4.0] == [policy.delay(n, lambda: 1.0) for n in range(1, 7)]
    assert 0.0 == policy.delay(3, lambda: 0.0)
    assert 0.5 == policy.delay(2, lambda: 0.5)
    assert 4.0 == policy.delay(10_000, lambda: 1.0)  # no overflow for huge retry numbers


def test_next_delay_respects_both_budgets() -> None:
    """No retry past max_attempts sends, nor a wait that would end past max_elapsed."""
    policy = RetryPolicy(max_attempts=3, base_delay=1.0, max_delay=1.0, max_elapsed=10.0)
    assert 1.0 == policy.next_delay(1, 0.0, lambda: 1.0)
    assert 1.0 == policy.next_delay(2, 0.0, lambda: 1.0)
    assert policy.next_delay(3, 0.0, lambda: 1.0) is None
    assert policy.next_delay(1, 9.5, lambda: 1.0) is None
    assert 0.25 == policy.next_delay(1, 9.5, lambda: 0.25)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_attempts": 0},
        {"max_attempts": 1.5},
        {"base_delay": 0},
        {"max_delay": -1},
        {"max_elapsed": True},
    ],
)
def test_retry_policy_validation(kwargs: dict[str, object]) -> None:
    """RetryPolicy refuses non-positive budgets, naming the field."""
    with pytest.raises(ConfigurationError, match=next(iter(kwargs))):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]
