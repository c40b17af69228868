"""The importer's reading side: listing shards, reading answers, failures, checkpoints.

:class:`ShardReading` is :class:`~streambridge.KinesisImporter`'s base: what it does with
``ListShards`` and ``GetRecords`` answers (well formed or not, errors and throttling), how a
shard backs off, ends, and saves its checkpoint. The importer adds the loop and the hand-over
to the sink (:mod:`streambridge.importer.importer`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import attrs

from streambridge._aws import CallError, ClientShell
from streambridge._tally import Tally
from streambridge.errors import DeliveryError, MalformedAnswerError
from streambridge.importer.answers import RecordsPage
from streambridge.importer.calls import Fetched, ShardLister, refusal_error
from streambridge.importer.checkpoints import CheckpointStore, ShardCheckpoint
from streambridge.importer.results import ImportResult
from streambridge.importer.settings import ImporterSettings
from streambridge.importer.shards import Shard, ShardTable
from streambridge.retry import THROTTLING_CODES, RetryPolicy

if TYPE_CHECKING:
    from mypy_boto3_kinesis import KinesisClient

__all__ = ["ShardReading"]

logger = logging.getLogger("streambridge.importer")

_Poll = Tally[ImportResult]


class ShardReading(ClientShell[ImporterSettings]):
    """Shards listed, answers read, failures sorted, checkpoints saved (the importer's base)."""

    client: KinesisClient
    checkpoints: CheckpointStore
    backoff: RetryPolicy
    shard_refresh_interval: float
    _table: ShardTable
    _lister: ShardLister
    _next_refresh: float

    def _refresh_shards(self) -> None:
        """List the stream's shards (paginated) and decide where new ones start.

        A transient failure — throttling, a connection error, a malformed answer — keeps the
        last listing and tries again after the longest backoff.
        """
        listed = self._lister.list()
        if isinstance(listed, CallError) and not listed.retryable:
            raise self._fatal(listed) from listed.error
        if isinstance(listed, CallError):
            self._keep_listing(listed)
            return
        saved = self.checkpoints.load(self.settings.stream_name)
        start = self.settings.start_position
        for shard in self._table.update(listed, saved, start_position=start):
            self._save(shard, shard.checkpoint)  # closed before we began at LATEST: done
        self._next_refresh = self._clock() + self.shard_refresh_interval

    def _keep_listing(self, failure: CallError) -> None:
        delay = self._lister.retry_in(failure, self.backoff, self._clock(), self._random)
        self._next_refresh = self._clock() + delay

    def _interpret(self, shard: Shard, fetched: Fetched, result: _Poll) -> RecordsPage | None:
        """One well-formed GetRecords answer, or None (the shard backs off or renews)."""
        if isinstance(fetched.iterator, CallError):
            self._read_error(shard, fetched.iterator, result)
            return None
        if fetched.iterator is not None:
            shard.iterator = fetched.iterator
        result.add("calls")
        page = fetched.page
        if isinstance(page, CallError):
            self._read_error(shard, page, result)
        if not isinstance(page, RecordsPage):  # a failure, or no page without an iterator
            return None
        if page.next_iterator is None and not self._confirmed_closed(shard):
            unbelieved = MalformedAnswerError(
                f"GetRecords answered 200 with no NextShardIterator for shard "
                f"{shard.shard_id}, which the shard listing says is open: the answer is "
                f"not believed",
                operation="GetRecords",
            )
            self._malformed(shard, unbelieved, result)
            return None
        return page

    def _malformed(self, shard: Shard, exc: object, result: _Poll) -> None:
        logger.warning("shard %s: %s; asking again from the checkpoint", shard.shard_id, exc)
        result.add("malformed_answers")
        shard.iterator = None  # the iterator's position is unknown too
        self._back_off(shard)

    def _confirmed_closed(self, shard: Shard) -> bool:
        """Whether the shard listing says the shard is closed (listing again if need be)."""
        if not shard.closed:
            self._refresh_shards()
        return shard.closed

    def _read_error(self, shard: Shard, failure: CallError, result: _Poll) -> None:
        code = failure.code
        if failure.malformed:
            self._malformed(shard, failure.message, result)
        elif failure.connection:
            logger.debug("shard %s: %s; backing off", shard.shard_id, failure.message)
            self._back_off(shard)
        elif code == "ExpiredIteratorException":
            logger.info(
                "shard %s: iterator expired; renewing it from the checkpoint", shard.shard_id
            )
            result.add("expired_iterators")
            shard.iterator = None
        elif code == "ResourceNotFoundException" and not self._stream_still_there(shard):
            logger.warning("shard %s is gone (trimmed past retention); moving on", shard.shard_id)
            self._finish(shard, result)
        elif failure.retryable:
            if code in THROTTLING_CODES:
                result.add("throttled")
            self._back_off(shard)
        else:
            raise self._fatal(failure) from failure.error

    def _stream_still_there(self, shard: Shard) -> bool:
        """After a ResourceNotFound: is the shard still listed (so the error is real)?"""
        self._refresh_shards()  # raises StreamNotFoundError when the stream itself is gone
        return shard.shard_id in self._table.listed

    def _back_off(self, shard: Shard) -> None:
        shard.back_off(
            backoff=self.backoff,
            min_interval=self.settings.min_call_interval,
            now=self._clock(),
            random=self._random,
        )

    def _finish(self, shard: Shard, result: _Poll) -> None:
        self._save(shard, attrs.evolve(shard.checkpoint, finished=True))
        shard.iterator = None
        result.append("finished_shards", shard.shard_id)
        logger.info("shard %s read to its end", shard.shard_id)

    def _save(self, shard: Shard, checkpoint: ShardCheckpoint) -> None:
        self.checkpoints.save(self.settings.stream_name, shard.shard_id, checkpoint)
        shard.checkpoint = checkpoint

    def _fatal(self, failure: CallError) -> DeliveryError:
        """Turn a non-retryable error into a DeliveryError that says what to do."""
        return refusal_error(failure, self.settings.stream_name, self.client.meta.region_name)
