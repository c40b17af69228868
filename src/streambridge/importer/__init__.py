"""The importer half: a Kinesis Data Stream -> PostHog events, with checkpoints and no gaps.

Pure modules (no boto3, no I/O), each tested without a client:

- :mod:`~streambridge.importer.settings` — :class:`ImporterSettings`, ``from_posthog_config``;
- :mod:`~streambridge.importer.keys` — nested keys and ``additionalPropertyMappings``;
- :mod:`~streambridge.importer.decoding` — record bytes -> JSON documents (BOM, gzip, NDJSON);
- :mod:`~streambridge.importer.events` — :class:`PostHogEvent`, its uuid, one document -> one
  event;
- :mod:`~streambridge.importer.conversion` — records -> events and skipped records (what any
  engine reading a stream reuses);
- :mod:`~streambridge.importer.shards` — the shard table: parents first, start positions,
  pacing;
- :mod:`~streambridge.importer.answers` — what a Kinesis answer must hold to be believed;
- :mod:`~streambridge.importer.results` — :class:`ImportResult`, :class:`SkippedRecord`…

Adapters: :mod:`~streambridge.importer.checkpoints` (memory, SQLite),
:mod:`~streambridge.importer.sinks` (:class:`PostHogSink`, :class:`JsonLinesSink`), and the
engines that own shard leases themselves: :mod:`~streambridge.importer.aws_lambda`
(:func:`make_handler`) and :mod:`~streambridge.importer.kcl` (:class:`KclRecordProcessor`).
The shell, :class:`KinesisImporter` (:mod:`~streambridge.importer.importer`), takes an
injected boto3 client; it is imported on first use, so that importing this package never
imports botocore.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from streambridge._util import lazy_exports as _lazy_exports

if TYPE_CHECKING:
    from streambridge.importer.aws_lambda import LambdaHandler, make_handler
    from streambridge.importer.checkpoints import (
        CheckpointStore,
        MemoryCheckpointStore,
        ShardCheckpoint,
        SQLiteCheckpointStore,
    )
    from streambridge.importer.conversion import RecordConverter
    from streambridge.importer.events import PostHogEvent
    from streambridge.importer.importer import KinesisImporter
    from streambridge.importer.kcl import KclRecordProcessor
    from streambridge.importer.results import (
        ImportResult,
        ImportTotals,
        SinkFailure,
        SinkRefusal,
        SkippedRecord,
    )
    from streambridge.importer.settings import ImporterSettings, StartPosition
    from streambridge.importer.sinks import JsonLinesSink, PostHogSink, Sink

__getattr__, __dir__ = _lazy_exports(
    __name__,
    globals(),
    {
        "KinesisImporter": "streambridge.importer.importer",
        "CheckpointStore": "streambridge.importer.checkpoints",
        "ImportResult": "streambridge.importer.results",
        "ImportTotals": "streambridge.importer.results",
        "ImporterSettings": "streambridge.importer.settings",
        "JsonLinesSink": "streambridge.importer.sinks",
        "KclRecordProcessor": "streambridge.importer.kcl",
        "LambdaHandler": "streambridge.importer.aws_lambda",
        "MemoryCheckpointStore": "streambridge.importer.checkpoints",
        "PostHogEvent": "streambridge.importer.events",
        "PostHogSink": "streambridge.importer.sinks",
        "RecordConverter": "streambridge.importer.conversion",
        "SQLiteCheckpointStore": "streambridge.importer.checkpoints",
        "ShardCheckpoint": "streambridge.importer.checkpoints",
        "Sink": "streambridge.importer.sinks",
        "SinkFailure": "streambridge.importer.results",
        "SinkRefusal": "streambridge.importer.results",
        "SkippedRecord": "streambridge.importer.results",
        "StartPosition": "streambridge.importer.settings",
        "make_handler": "streambridge.importer.aws_lambda",
    },
)

__all__ = [
    "CheckpointStore",
    "ImportResult",
    "ImportTotals",
    "ImporterSettings",
    "JsonLinesSink",
    "KclRecordProcessor",
    "KinesisImporter",
    "LambdaHandler",
    "MemoryCheckpointStore",
    "PostHogEvent",
    "PostHogSink",
    "RecordConverter",
    "SQLiteCheckpointStore",
    "ShardCheckpoint",
    "Sink",
    "SinkFailure",
    "SinkRefusal",
    "SkippedRecord",
    "StartPosition",
    "make_handler",
]
