"""Test helpers: an embedded local AWS, a local PostHog, fault injection, a fake clock.

Import this package only in tests and demos. :func:`local_aws` needs the ``local`` extra (moto,
flask, flask-cors); :class:`FaultInjector` needs only botocore and works against any endpoint
(the local one, LocalStack, real AWS); :func:`local_posthog` and :class:`FakeClock` need
nothing. ``import streambridge`` never imports it. One module per tool:

- :mod:`~streambridge.testing.local` — :class:`LocalAWS`, :func:`local_aws`;
- :mod:`~streambridge.testing.posthog` — :class:`LocalPostHog`, :func:`local_posthog`;
- :mod:`~streambridge.testing.faults` — :class:`FaultInjector` and error faults;
- :mod:`~streambridge.testing.responses` — spoilt answers, partial failures, ``AcceptAll``;
- :mod:`~streambridge.testing.clock` — :class:`FakeClock`.
"""

from __future__ import annotations

from streambridge.testing.clock import FakeClock
from streambridge.testing.faults import (
    ConnectionFault,
    ErrorFault,
    EveryNth,
    Fault,
    FaultInjector,
    Latency,
    ResponseFault,
    access_denied,
    connection_error,
    expired_iterator,
    not_found,
    service_unavailable,
    throttling,
)
from streambridge.testing.local import ACCOUNT_ID, Credentials, LocalAWS, local_aws, split_records
from streambridge.testing.posthog import LocalPostHog, local_posthog
from streambridge.testing.responses import MANGLES, AcceptAll, MalformedAnswer, PartialFailure

__all__ = [
    "ACCOUNT_ID",
    "MANGLES",
    "AcceptAll",
    "ConnectionFault",
    "Credentials",
    "ErrorFault",
    "EveryNth",
    "FakeClock",
    "Fault",
    "FaultInjector",
    "Latency",
    "LocalAWS",
    "LocalPostHog",
    "MalformedAnswer",
    "PartialFailure",
    "ResponseFault",
    "access_denied",
    "connection_error",
    "expired_iterator",
    "local_aws",
    "local_posthog",
    "not_found",
    "service_unavailable",
    "split_records",
    "throttling",
]
