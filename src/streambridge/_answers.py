"""What every AWS answer reader shares (pure): the rules are in each half's ``answers`` module.

botocore does not check that a ``200`` answer is complete — it does not enforce
``Content-Length``, and it parses a body that is cut short, garbled or of another operation as
``{}`` (see docs/reliability.md). Reading ``{}`` with ``.get(...)`` defaults would turn such an
answer into "every record delivered" or "the shard has ended": a silent loss. So every answer
the shells act on goes through a reader of :mod:`streambridge.forwarder.answers` or
:mod:`streambridge.importer.answers` first, and anything that is not well formed raises
:class:`~streambridge.errors.MalformedAnswerError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from streambridge.errors import MalformedAnswerError

__all__ = ["required_text", "text"]


def text(value: object) -> bool:
    """Whether ``value`` is a non-empty string."""
    return isinstance(value, str) and bool(value)


def required_text(response: Mapping[str, Any], key: str, operation: str) -> str:
    """The non-empty string at ``key`` of an answer of ``operation``.

    Raises:
        MalformedAnswerError: There is none.
    """
    value = response.get(key)
    if not text(value):
        raise MalformedAnswerError.because(operation, f"has no {key}")
    return str(value)
