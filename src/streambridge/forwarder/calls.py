"""One round of sending to Firehose, read entry by entry: the forwarder's call -> interpret step.

Each function sends a group of records once and says, per record, whether it was delivered
(None) or why not (an :class:`~streambridge.forwarder.delivery.EntryError`, retryable or not),
and which error, if any, stops delivery altogether (a :class:`~streambridge._aws.CallError`
retrying cannot fix). What to do next is the ledger's and the forwarder's decision.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from streambridge._aws import CallError, attempt
from streambridge.forwarder.answers import batch_failures, record_id
from streambridge.forwarder.delivery import EntryError
from streambridge.retry import is_retryable

__all__ = ["Outcomes", "put_batch", "put_singly"]

logger = logging.getLogger("streambridge.forwarder")

#: Per record: None (delivered) or why not; and the error that stops delivery, if any.
Outcomes = tuple[list[EntryError | None], CallError | None]


def put_batch(
    client: Any, stream: str, records: list[bytes], *, count: Callable[[], object]
) -> Outcomes:
    """One ``PutRecordBatch`` call; ``count`` is called once, before it."""
    count()
    failed = attempt(
        client.put_record_batch,
        "PutRecordBatch",
        lambda response: batch_failures(response, len(records)),
        DeliveryStreamName=stream,
        Records=[{"Data": record} for record in records],
    )
    if isinstance(failed, CallError):
        return ([], failed) if not failed.retryable else (again(failed, len(records)), None)
    outcomes: list[EntryError | None] = [None] * len(records)
    for index, code, message in failed:
        outcomes[index] = EntryError(code, message, is_retryable(code))
    return outcomes, None


def put_singly(
    client: Any, stream: str, records: list[bytes], *, count: Callable[[], object]
) -> Outcomes:
    """One ``PutRecord`` call per record, in order; ``count`` is called before each.

    An error retrying cannot fix stops the run: the outcomes then cover the records sent
    before it, and the others were not sent.
    """
    done: list[EntryError | None] = []
    for record in records:
        count()
        answer = attempt(
            client.put_record,
            "PutRecord",
            record_id,
            DeliveryStreamName=stream,
            Record={"Data": record},
        )
        if not isinstance(answer, CallError):
            done.append(None)
        elif not answer.retryable:
            return done, answer
        else:
            done.extend(again(answer, 1))
    return done, None


def again(failure: CallError, records: int) -> list[EntryError | None]:
    """A retryable call failure, as the outcome of each of its records."""
    if failure.malformed:  # the outcome is unknown: treat it as not done
        logger.warning(
            "%s; re-sending the call's %d record(s)",
            failure.message,
            records,
            extra={"error_code": failure.code, "records": records},
        )
    return [EntryError(failure.code, failure.message, retryable=True)] * records
