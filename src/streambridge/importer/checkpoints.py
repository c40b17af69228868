"""Where the importer remembers how far it has read each shard.

A checkpoint is the sequence number of the last record of a shard whose events the sink
accepted (or that was skipped); reading resumes ``AFTER_SEQUENCE_NUMBER`` it. A shard read to
its end (a closed parent after resharding) is marked finished, so that it is not read again and
its children may be read.

* :class:`MemoryCheckpointStore` — for tests and one-shot runs.
* :class:`SQLiteCheckpointStore` — the embedded default for anything that outlives a process.
  Every write is one SQLite transaction (WAL journal, synchronous=FULL), so a crash leaves the
  last committed checkpoint, never a torn one.

Any object with the methods of :class:`CheckpointStore` can be passed instead (DynamoDB, Redis…).
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Protocol, runtime_checkable

from typing_extensions import Self

from streambridge._files import create_private
from streambridge.importer.shards import ShardCheckpoint

__all__ = ["CheckpointStore", "MemoryCheckpointStore", "SQLiteCheckpointStore", "ShardCheckpoint"]


@runtime_checkable
class CheckpointStore(Protocol):
    """What the importer needs from a checkpoint store."""

    def load(self, stream: str) -> dict[str, ShardCheckpoint]:
        """Every shard's checkpoint for ``stream``, by shard id."""
        ...  # pragma: no cover - protocol

    def save(self, stream: str, shard_id: str, checkpoint: ShardCheckpoint) -> None:
        """Persist one shard's checkpoint (atomically)."""
        ...  # pragma: no cover - protocol


class MemoryCheckpointStore:
    """Checkpoints in a dict: lost with the process."""

    def __init__(self) -> None:
        """Create an empty store."""
        self._data: dict[tuple[str, str], ShardCheckpoint] = {}
        self._lock = threading.Lock()

    def load(self, stream: str) -> dict[str, ShardCheckpoint]:
        """Every shard's checkpoint for ``stream``."""
        with self._lock:
            return {shard: cp for (s, shard), cp in self._data.items() if s == stream}

    def save(self, stream: str, shard_id: str, checkpoint: ShardCheckpoint) -> None:
        """Remember one shard's checkpoint."""
        with self._lock:
            self._data[(stream, shard_id)] = checkpoint


class SQLiteCheckpointStore:
    """Checkpoints in a SQLite file; safe across restarts and crashes.

    One file may hold several streams. Opening the same file from several importers is safe
    for SQLite, but two importers reading the *same* shards would both import them: give each
    importer its own streams.
    """

    def __init__(self, path: str | Path) -> None:
        """Open (creating if needed, ``0600``: it names the streams read) the store at ``path``."""
        self.path = Path(path)
        self._lock = threading.Lock()
        if str(path) != ":memory:":
            create_private(self.path)  # 0600; SQLite gives its -wal and -shm files that mode
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS checkpoints ("
                " stream TEXT NOT NULL, shard TEXT NOT NULL, sequence_number TEXT,"
                " finished INTEGER NOT NULL DEFAULT 0, start TEXT,"
                " updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),"
                " PRIMARY KEY (stream, shard))"
            )
        except BaseException:  # not a database, read-only…: nothing left open
            self._db.close()
            raise

    def load(self, stream: str) -> dict[str, ShardCheckpoint]:
        """Every shard's checkpoint for ``stream``."""
        with self._lock:
            rows = self._db.execute(
                "SELECT shard, sequence_number, finished, start FROM checkpoints WHERE stream = ?",
                (stream,),
            ).fetchall()
        return {
            shard: ShardCheckpoint(sequence, bool(done), start)
            for shard, sequence, done, start in rows
        }

    def save(self, stream: str, shard_id: str, checkpoint: ShardCheckpoint) -> None:
        """Write one shard's checkpoint in its own transaction."""
        with self._lock:
            self._db.execute(
                "INSERT INTO checkpoints (stream, shard, sequence_number, finished, start)"
                " VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (stream, shard) DO UPDATE SET"
                " sequence_number = excluded.sequence_number, finished = excluded.finished,"
                " start = excluded.start, updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
                (
                    stream,
                    shard_id,
                    checkpoint.sequence_number,
                    int(checkpoint.finished),
                    checkpoint.start,
                ),
            )

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> Self:
        """Return self."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Close the database."""
        self.close()
