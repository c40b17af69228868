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
from importlib.metadata import PackageNotFoundError as _PackageNotFoundError
from importlib.metadata import version as _version
from typing import TYPE_CHECKING

from streambridge._util import lazy_exports as _lazy_exports
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
from streambridge.retry import RetryPolicy

if TYPE_CHECKING:
    from streambridge._parsing import fast_parsing
    from streambridge.forwarder.forwarder import FirehoseForwarder
    from streambridge.importer.importer import KinesisImporter

# A library does not decide where its logs go: without configuration, they go nowhere.
_logging.getLogger("streambridge").addHandler(_logging.NullHandler())

try:
    __version__ = _version("streambridge")
except _PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0"

# The shells import botocore; load them on first use so that the pure modules (and
# ``import streambridge``) never pull in boto3 or botocore.
__getattr__, __dir__ = _lazy_exports(
    __name__,
    globals(),
    {
        "FirehoseForwarder": "streambridge.forwarder.forwarder",
        "KinesisImporter": "streambridge.importer.importer",
        "fast_parsing": "streambridge._parsing",
    },
)

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
    "fast_parsing",
    "make_handler",
    "read_dead_letters",
]
