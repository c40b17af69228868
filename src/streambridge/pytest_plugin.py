"""pytest fixtures for users' test suites (registered as the ``streambridge`` pytest plugin).

Installed with the package; the fixtures start nothing until a test asks for them, and need the
``local`` extra then:

* ``streambridge_aws_server`` (session scope): one moto server on 127.0.0.1 for the session;
* ``streambridge_aws``: the same server, emptied before the test (a
  :class:`~streambridge.testing.LocalAWS`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from streambridge.testing import LocalAWS

__all__ = ["streambridge_aws", "streambridge_aws_server"]


@pytest.fixture(scope="session")
def streambridge_aws_server() -> Iterator[LocalAWS]:
    """One moto server on 127.0.0.1 for the whole session (shared state: see streambridge_aws)."""
    from streambridge.testing import local_aws  # noqa: PLC0415 - only when a test asks

    with local_aws() as aws:
        yield aws


@pytest.fixture
def streambridge_aws(streambridge_aws_server: LocalAWS) -> LocalAWS:
    """The session's local AWS, with every stream, bucket and object removed first."""
    streambridge_aws_server.reset()
    return streambridge_aws_server
