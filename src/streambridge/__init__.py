"""streambridge: typed, tested bridges between analytics events and AWS Kinesis.

The pure core (no boto3, no I/O):

- :mod:`streambridge.filtering` — apply the mParticle connection settings to a batch;
- :mod:`streambridge.exclusion` — Metadata Field Exclusion;
- :mod:`streambridge.batching` — Send as Batch / Wait for Complete Batch framing;
- :mod:`streambridge.encoding` — JSON records, size limits, ``PutRecordBatch`` packing, and
  Kinesis record decoding (BOM, gzip, newline-delimited JSON);
- :mod:`streambridge.keys` — nested-key extraction and ``additionalPropertyMappings``;
- :mod:`streambridge.posthog` — PostHog events and the record-to-event conversion;
- :mod:`streambridge.checkpoints` — where the importer keeps its place (memory, SQLite);
- :mod:`streambridge.retry` — which errors to retry, and the backoff;
- :mod:`streambridge.answers` — what an AWS answer must hold before it is believed;
- :mod:`streambridge.settings`, :mod:`streambridge.results`, :mod:`streambridge.errors` — values.

The shell, which takes an injected boto3 client:

- :class:`FirehoseForwarder` — mParticle batches to a Kinesis Data Firehose delivery stream;
- :class:`KinesisImporter` — a Kinesis Data Stream to PostHog events.

Adapters: :mod:`streambridge.sinks` (:class:`PostHogSink`, which returns only once PostHog
accepted the events; :class:`JsonLinesSink`), :mod:`streambridge.deadletter` (what could not
be delivered, with the reason, as JSON lines), :mod:`streambridge.testing` (an embedded local
AWS and fault injection for tests; needs the ``local`` extra) and the ``streambridge`` command.
"""

from __future__ import annotations

import logging as _logging
from importlib import import_module as _import_module
from importlib.metadata import PackageNotFoundError as _PackageNotFoundError
from importlib.metadata import version as _version
from typing import TYPE_CHECKING, Any

from streambridge.checkpoints import MemoryCheckpointStore, SQLiteCheckpointStore
from streambridge.deadletter import DeadLetter, DeadLetterFile, read_dead_letters
from streambridge.errors import (
    AccessDeniedError,
    ConfigurationError,
    DecodeError,
    DeliveryError,
    EncodingError,
    FatalSinkError,
    ForwardAbortedError,
    InvalidBatchError,
    MalformedAnswerError,
    PostHogAuthError,
    PostHogRefusedError,
    PostHogUnavailableError,
    SinkError,
    StreambridgeError,
    StreamNotFoundError,
    StreamNotReadyError,
    UnusableRecordError,
)
from streambridge.posthog import PostHogEvent
from streambridge.results import (
    FailedRecord,
    ForwardResult,
    ImportResult,
    ImportTotals,
    RejectedBatch,
    SinkFailure,
    SinkRefusal,
    SkippedBatch,
    SkippedRecord,
)
from streambridge.retry import RetryPolicy
from streambridge.settings import ForwarderSettings, ImporterSettings
from streambridge.sinks import JsonLinesSink, PostHogSink

if TYPE_CHECKING:
    from streambridge.forwarder import DeliveryStreamInfo, FirehoseForwarder
    from streambridge.importer import KinesisImporter

# A library does not decide where its logs go: without configuration, they go nowhere.
_logging.getLogger("streambridge").addHandler(_logging.NullHandler())

try:
    __version__ = _version("streambridge")
except _PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0"

# The shells import botocore; load them on first use so that the pure core
# (``import streambridge.filtering``) never pulls in boto3 or botocore.
_LAZY = {
    "DeliveryStreamInfo": "streambridge.forwarder",
    "FirehoseForwarder": "streambridge.forwarder",
    "KinesisImporter": "streambridge.importer",
}


def __getattr__(name: str) -> Any:
    """Import the shell classes on first access."""
    module = _LAZY.get(name)
    if module is None:
        msg = f"module 'streambridge' has no attribute {name!r}"
        raise AttributeError(msg)
    value = getattr(_import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The public names, the lazy ones included."""
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "AccessDeniedError",
    "ConfigurationError",
    "DeadLetter",
    "DeadLetterFile",
    "DecodeError",
    "DeliveryError",
    "DeliveryStreamInfo",
    "EncodingError",
    "FailedRecord",
    "FatalSinkError",
    "FirehoseForwarder",
    "ForwardAbortedError",
    "ForwardResult",
    "ForwarderSettings",
    "ImportResult",
    "ImportTotals",
    "ImporterSettings",
    "InvalidBatchError",
    "JsonLinesSink",
    "KinesisImporter",
    "MalformedAnswerError",
    "MemoryCheckpointStore",
    "PostHogAuthError",
    "PostHogEvent",
    "PostHogRefusedError",
    "PostHogSink",
    "PostHogUnavailableError",
    "RejectedBatch",
    "RetryPolicy",
    "SQLiteCheckpointStore",
    "SinkError",
    "SinkFailure",
    "SinkRefusal",
    "SkippedBatch",
    "SkippedRecord",
    "StreamNotFoundError",
    "StreamNotReadyError",
    "StreambridgeError",
    "UnusableRecordError",
    "__version__",
    "read_dead_letters",
]
