"""The forwarder half: mParticle event batches -> a Kinesis Data Firehose delivery stream.

Pure modules (no boto3, no I/O), each tested without a client:

- :mod:`~streambridge.forwarder.settings` — :class:`ForwarderSettings`, ``from_mparticle``;
- :mod:`~streambridge.forwarder.filtering` — the connection settings applied to one batch;
- :mod:`~streambridge.forwarder.exclusion` — Metadata Field Exclusion;
- :mod:`~streambridge.forwarder.framing` — Send as Batch / per event / Wait for Complete Batch;
- :mod:`~streambridge.forwarder.encoding` — records, Firehose size limits, packing;
- :mod:`~streambridge.forwarder.answers` — what a Firehose answer must hold to be believed;
- :mod:`~streambridge.forwarder.delivery` — the per-entry ledger of a call;
- :mod:`~streambridge.forwarder.results` — :class:`ForwardResult`, :class:`FailedRecord`…

The shell, :class:`FirehoseForwarder` (:mod:`~streambridge.forwarder.forwarder`), takes an
injected boto3 client; it is imported on first use, so that importing this package (or any of
its pure modules) never imports boto3 or botocore.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from streambridge._util import lazy_exports as _lazy_exports
from streambridge.forwarder.results import (
    FLUSH,
    DeliveryStreamInfo,
    DroppedEvent,
    FailedRecord,
    ForwardResult,
    RejectedBatch,
    Settled,
    SkippedBatch,
)
from streambridge.forwarder.settings import ForwarderSettings, PutMode

if TYPE_CHECKING:
    from streambridge.forwarder.forwarder import FirehoseForwarder

__getattr__, __dir__ = _lazy_exports(
    __name__, globals(), {"FirehoseForwarder": "streambridge.forwarder.forwarder"}
)

__all__ = [
    "FLUSH",
    "DeliveryStreamInfo",
    "DroppedEvent",
    "FailedRecord",
    "FirehoseForwarder",
    "ForwardResult",
    "ForwarderSettings",
    "PutMode",
    "RejectedBatch",
    "Settled",
    "SkippedBatch",
]
