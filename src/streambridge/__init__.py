"""streambridge: typed, tested bridges between analytics events and AWS Kinesis.

The pure core (no boto3, no I/O):

- :mod:`streambridge.filtering` — apply the mParticle connection settings to a batch;
- :mod:`streambridge.exclusion` — Metadata Field Exclusion;
- :mod:`streambridge.batching` — Send as Batch / Wait for Complete Batch framing;
- :mod:`streambridge.encoding` — JSON records, size limits, ``PutRecordBatch`` packing;
- :mod:`streambridge.retry` — which errors to retry, and the backoff;
- :mod:`streambridge.settings`, :mod:`streambridge.results`, :mod:`streambridge.errors` — values.

The shell, which takes an injected boto3 client:

- :class:`FirehoseForwarder` — mParticle batches to a Kinesis Data Firehose delivery stream.

Adapters: :mod:`streambridge.testing` (an embedded local AWS and fault injection for tests;
needs the ``local`` extra) and the ``streambridge`` command.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from streambridge.errors import (
    AccessDeniedError,
    ConfigurationError,
    DeliveryError,
    EncodingError,
    InvalidBatchError,
    StreambridgeError,
    StreamNotFoundError,
    StreamNotReadyError,
)
from streambridge.forwarder import DeliveryStreamInfo, FirehoseForwarder
from streambridge.results import FailedRecord, ForwardResult, RejectedBatch, SkippedBatch
from streambridge.retry import RetryPolicy
from streambridge.settings import ForwarderSettings

try:
    __version__ = version("streambridge")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0"

__all__ = [
    "AccessDeniedError",
    "ConfigurationError",
    "DeliveryError",
    "DeliveryStreamInfo",
    "EncodingError",
    "FailedRecord",
    "FirehoseForwarder",
    "ForwardResult",
    "ForwarderSettings",
    "InvalidBatchError",
    "RejectedBatch",
    "RetryPolicy",
    "SkippedBatch",
    "StreamNotFoundError",
    "StreamNotReadyError",
    "StreambridgeError",
    "__version__",
]
