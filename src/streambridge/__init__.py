"""streambridge: typed, tested bridges between analytics events and AWS Kinesis.

Two halves around a small shared base (``docs/architecture.md`` draws the layout):

- :mod:`streambridge.forwarder` — mParticle batches to a Kinesis Data Firehose delivery stream
  (:class:`FirehoseForwarder`, :class:`ForwarderSettings`, :class:`ForwardResult`);
- :mod:`streambridge.importer` — a Kinesis Data Stream to PostHog events
  (:class:`KinesisImporter`, :class:`ImporterSettings`, :class:`ImportResult`, the checkpoint
  stores, the sinks);
- the base: :mod:`streambridge.errors` (one exception root), :mod:`streambridge.retry` (the
  backoff both halves use), :mod:`streambridge.deadletter` (what could not be delivered, as
  JSON lines), and private helpers (the JSON codec, botocore at the edge).

Each half's pure modules (filtering, exclusion, framing, encoding; keys, decoding, events,
conversion, shards) import no boto3 and do no I/O. The shells take an injected boto3 client
and are imported on first use. :mod:`streambridge.testing` (an embedded local AWS, a local
PostHog and fault injection; the ``local`` extra) and the ``streambridge`` command sit on top.

Every name below is importable from ``streambridge``; each subpackage's ``__all__`` lists its
own.
"""

from __future__ import annotations

import logging as _logging
from typing import TYPE_CHECKING, Any

from streambridge._util import lazy_exports as _lazy_exports

if TYPE_CHECKING:
    __version__: str
    from streambridge._wire import fast_clients
    from streambridge.deadletter import (
        DeadLetter,
        DeadLetterFile,
        DeadLetterTarget,
        read_dead_letters,
    )
    from streambridge.deadletter_remote import S3DeadLetters, SQSDeadLetters
    from streambridge.errors import (
        AccessDeniedError,
        ConfigurationError,
        DeadLetterError,
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
    from streambridge.forwarder import (
        DeliveryStreamInfo,
        DroppedEvent,
        FailedRecord,
        ForwarderSettings,
        ForwardResult,
        PutMode,
        RejectedBatch,
        SkippedBatch,
    )
    from streambridge.forwarder.forwarder import FirehoseForwarder
    from streambridge.importer import (
        CheckpointStore,
        ImporterSettings,
        ImportResult,
        ImportTotals,
        JsonLinesSink,
        KclRecordProcessor,
        LambdaHandler,
        MemoryCheckpointStore,
        PostHogEvent,
        PostHogSink,
        RecordConverter,
        ShardCheckpoint,
        Sink,
        SinkFailure,
        SinkRefusal,
        SkippedRecord,
        SQLiteCheckpointStore,
        StartPosition,
        make_handler,
    )
    from streambridge.importer.importer import KinesisImporter
    from streambridge.retry import RetryPolicy

# A library does not decide where its logs go: without configuration, they go nowhere.
_logging.getLogger("streambridge").addHandler(_logging.NullHandler())

# Every name is imported on first use: ``import streambridge`` (and a Lambda function that
# imports only the importer's handler) loads neither the forwarder, nor botocore, nor the
# package metadata (for ``__version__``) until asked — a cold start pays for what it uses.
_lazy_getattr, _lazy_dir = _lazy_exports(
    __name__,
    globals(),
    {
        "FirehoseForwarder": "streambridge.forwarder.forwarder",
        "KinesisImporter": "streambridge.importer.importer",
        "fast_clients": "streambridge._wire",
        "AccessDeniedError": "streambridge.errors",
        "CheckpointStore": "streambridge.importer",
        "ConfigurationError": "streambridge.errors",
        "DeadLetter": "streambridge.deadletter",
        "DeadLetterError": "streambridge.errors",
        "DeadLetterFile": "streambridge.deadletter",
        "DeadLetterTarget": "streambridge.deadletter",
        "DecodeError": "streambridge.errors",
        "DeliveryError": "streambridge.errors",
        "DeliveryStreamInfo": "streambridge.forwarder",
        "DroppedEvent": "streambridge.forwarder",
        "EncodingError": "streambridge.errors",
        "FailedRecord": "streambridge.forwarder",
        "FatalSinkError": "streambridge.errors",
        "ForwardAbortedError": "streambridge.errors",
        "ForwardResult": "streambridge.forwarder",
        "ForwarderSettings": "streambridge.forwarder",
        "ImportResult": "streambridge.importer",
        "ImportTotals": "streambridge.importer",
        "ImporterSettings": "streambridge.importer",
        "InvalidBatchError": "streambridge.errors",
        "JsonLinesSink": "streambridge.importer",
        "KclRecordProcessor": "streambridge.importer",
        "LambdaHandler": "streambridge.importer",
        "MalformedAnswerError": "streambridge.errors",
        "MemoryCheckpointStore": "streambridge.importer",
        "PostHogAuthError": "streambridge.errors",
        "PostHogEvent": "streambridge.importer",
        "PostHogRefusedError": "streambridge.errors",
        "PostHogSink": "streambridge.importer",
        "PostHogUnavailableError": "streambridge.errors",
        "PutMode": "streambridge.forwarder",
        "RecordConverter": "streambridge.importer",
        "RejectedBatch": "streambridge.forwarder",
        "RetryPolicy": "streambridge.retry",
        "S3DeadLetters": "streambridge.deadletter_remote",
        "SQLiteCheckpointStore": "streambridge.importer",
        "SQSDeadLetters": "streambridge.deadletter_remote",
        "ShardCheckpoint": "streambridge.importer",
        "Sink": "streambridge.importer",
        "SinkError": "streambridge.errors",
        "SinkFailure": "streambridge.importer",
        "SinkRefusal": "streambridge.importer",
        "SkippedBatch": "streambridge.forwarder",
        "SkippedRecord": "streambridge.importer",
        "StartPosition": "streambridge.importer",
        "StreamNotFoundError": "streambridge.errors",
        "StreamNotReadyError": "streambridge.errors",
        "StreambridgeError": "streambridge.errors",
        "UnusableRecordError": "streambridge.errors",
        "make_handler": "streambridge.importer",
        "read_dead_letters": "streambridge.deadletter",
    },
)


def __getattr__(name: str) -> Any:
    """A name of the face, imported on first use; ``__version__`` read from the metadata."""
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415

        try:
            found = version("streambridge")
        except PackageNotFoundError:  # pragma: no cover - a source tree without install
            found = "0.0.0"
        globals()["__version__"] = found
        return found
    return _lazy_getattr(name)


def __dir__() -> list[str]:
    """The face's names, imported or not."""
    return sorted({*_lazy_dir(), "__version__"})


__all__ = [
    "AccessDeniedError",
    "CheckpointStore",
    "ConfigurationError",
    "DeadLetter",
    "DeadLetterError",
    "DeadLetterFile",
    "DeadLetterTarget",
    "DecodeError",
    "DeliveryError",
    "DeliveryStreamInfo",
    "DroppedEvent",
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
    "KclRecordProcessor",
    "KinesisImporter",
    "LambdaHandler",
    "MalformedAnswerError",
    "MemoryCheckpointStore",
    "PostHogAuthError",
    "PostHogEvent",
    "PostHogRefusedError",
    "PostHogSink",
    "PostHogUnavailableError",
    "PutMode",
    "RecordConverter",
    "RejectedBatch",
    "RetryPolicy",
    "S3DeadLetters",
    "SQLiteCheckpointStore",
    "SQSDeadLetters",
    "ShardCheckpoint",
    "Sink",
    "SinkError",
    "SinkFailure",
    "SinkRefusal",
    "SkippedBatch",
    "SkippedRecord",
    "StartPosition",
    "StreamNotFoundError",
    "StreamNotReadyError",
    "StreambridgeError",
    "UnusableRecordError",
    "__version__",
    "fast_clients",
    "make_handler",
    "read_dead_letters",
]
