"""One batch -> its records: filtered, framed and encoded, and what else it gave (pure).

The forwarder's first step for every way in (:meth:`~streambridge.FirehoseForwarder.forward_many`,
:meth:`~streambridge.FirehoseForwarder.prepare`): the batch is evaluated against the
connection settings (:mod:`~streambridge.forwarder.filtering`), framed into record payloads
(:mod:`~streambridge.forwarder.framing`; or held by Wait for Complete Batch) and encoded. What
it gave besides records is counted in the call's tally: filtered and dropped events, a skipped
batch, or a rejected one — a batch that cannot be read never stops the others.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from streambridge._tally import Tally
from streambridge.deadletter import hand_back_said
from streambridge.errors import InvalidBatchError
from streambridge.forwarder.encoding import dropped_events
from streambridge.forwarder.filtering import evaluate
from streambridge.forwarder.framing import SessionBuffer, record_payloads
from streambridge.forwarder.results import DroppedEvent, ForwardResult, RejectedBatch, SkippedBatch
from streambridge.forwarder.settings import ForwarderSettings

__all__ = ["batch_records"]

logger = logging.getLogger("streambridge.forwarder")


def batch_records(
    index: int,
    batch: object,
    settings: ForwarderSettings,
    tally: Tally[ForwardResult],
    *,
    encode: Callable[[list[dict[str, Any]]], list[bytes]],
    sessions: SessionBuffer | None,
    now: Callable[[], float],
    excluded: set[tuple[str, ...]],
    on_drop: Callable[[DroppedEvent], object] | None,
) -> list[bytes]:
    """The records one batch becomes; a batch that cannot be read is rejected.

    A batch rejected part way counts none of its events anywhere (every event in is in a
    record, dropped, filtered — or in a rejected batch, never twice): they are counted only
    once it is taken.

    Args:
        index: The batch's position in the call's input (for skipped, rejected, dropped).
        batch: The batch, as decoded JSON.
        settings: The connection settings.
        tally: The call's counts, added to.
        encode: Payloads -> records (the forwarder's encoding, failures counted).
        sessions: Wait for Complete Batch's held sessions, or None.
        now: The clock (session ages).
        excluded: Exclusion paths that removed something, added to.
        on_drop: Given each malformed event removed from the batch.
    """
    try:
        outcome = evaluate(batch, settings)
        payloads: list[dict[str, Any]] = []
        if outcome.batch is not None and sessions is not None:
            assert isinstance(batch, Mapping)  # noqa: S101 - evaluate() checked it
            payloads = sessions.add(batch, outcome.batch, now())
        elif outcome.batch is not None:
            payloads = record_payloads(outcome.batch, send_as_batch=settings.send_as_batch)
        tally.add("filtered_events", outcome.filtered_events)
        for reason, count in outcome.dropped.items():
            tally.count_in("dropped_reasons", reason, count)
        excluded.update(outcome.excluded)
        if outcome.dropped_items and on_drop is not None:
            drops = dropped_events(index, outcome.dropped_items)
            hand_back_said(on_drop, drops, logger, "on_drop raised")
        if outcome.batch is None:
            assert isinstance(batch, Mapping)  # noqa: S101 - evaluate() checked it
            message_id = batch.get("message_id")
            message_id = message_id if isinstance(message_id, str) else None
            tally.append("skipped", SkippedBatch(index, message_id, outcome.skip_reason or ""))
            return []
        return encode(payloads)
    except InvalidBatchError as exc:
        tally.append("rejected", RejectedBatch(index, exc.reason))
    except Exception as exc:  # noqa: BLE001 - the last line: one batch never stops the rest
        logger.warning(
            "batch %d rejected: %s: %s",
            index,
            type(exc).__name__,
            exc,
            extra={"batch_index": index, "error_code": type(exc).__name__},
        )
        reason = f"cannot be processed ({type(exc).__name__}: {exc})"[:300]
        tally.append("rejected", RejectedBatch(index, reason))
    return []
