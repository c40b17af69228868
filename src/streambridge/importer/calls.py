"""Calls to Kinesis that take more than one request: the importer's call -> interpret step.

The shard listing comes from ``ListShards``, or — where a policy grants ``DescribeStream`` but
not ``ListShards``, as PostHog's documented policy does — from ``DescribeStream``, paginated
with ``ExclusiveStartShardId``.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, Future
from typing import Any

import attrs

from streambridge._aws import CallError, attempt, fatal_error
from streambridge.errors import DeliveryError
from streambridge.importer.answers import (
    RecordsPage,
    described_shards_page,
    records_page,
    shard_iterator,
    shards_page,
)
from streambridge.importer.shards import Shard
from streambridge.retry import RetryPolicy

__all__ = [
    "Fetched",
    "ShardLister",
    "describe_shards",
    "fetch",
    "fetch_in_order",
    "list_shards",
    "listing_failure",
    "refusal_error",
]

logger = logging.getLogger("streambridge.importer")


def list_shards(client: Any, stream: str) -> list[dict[str, Any]] | CallError:
    """Every shard of ``stream``, paginated ``ListShards``; or the failure of a page.

    An expired ``NextToken`` (a listing that took over 5 minutes) starts the listing again.
    """
    listed: list[dict[str, Any]] = []
    params: dict[str, Any] = {"StreamName": stream}
    while True:
        page = attempt(client.list_shards, "ListShards", shards_page, **params)
        if isinstance(page, CallError) and page.code == "ExpiredNextTokenException":
            listed, params = [], {"StreamName": stream}
            continue
        if isinstance(page, CallError):
            return page
        shards, token = page
        listed.extend(shards)
        if not token:
            return listed
        params = {"NextToken": token}


def describe_shards(client: Any, stream: str) -> list[dict[str, Any]] | CallError:
    """Every shard of ``stream``, paginated ``DescribeStream``; or the failure of a page."""
    listed: list[dict[str, Any]] = []
    params: dict[str, Any] = {"StreamName": stream}
    while True:
        page = attempt(client.describe_stream, "DescribeStream", described_shards_page, **params)
        if isinstance(page, CallError):
            return page
        shards, more = page
        listed.extend(shards)
        if not (more and shards):
            return listed
        params = {"StreamName": stream, "ExclusiveStartShardId": shards[-1]["ShardId"]}


class ShardLister:
    """Lists a stream's shards: ``ListShards``, or ``DescribeStream`` once that was denied."""

    def __init__(self, client: Any, stream: str) -> None:
        """A lister for ``stream`` through ``client``."""
        self.client = client
        self.stream = stream
        #: Whether ListShards was denied, so that DescribeStream lists the shards.
        self.describe = False
        #: Whether a listing ever succeeded; until then, failures are counted and bounded.
        self.listed = False
        self._failures = 0
        self._first_failure: float | None = None

    def _list(self) -> list[dict[str, Any]] | CallError:
        if not self.describe:
            listed = list_shards(self.client, self.stream)
            if not (isinstance(listed, CallError) and listed.denied):
                return listed
            logger.warning(
                "ListShards is denied on Kinesis stream %r (%s); listing shards with "
                "DescribeStream instead, which AWS limits to 10 calls per second per account "
                "(ListShards: 1,000 per stream): allow kinesis:ListShards to lift it",
                self.stream,
                listed.code,
                extra={"stream": self.stream, "error_code": listed.code},
            )
            self.describe = True
        return describe_shards(self.client, self.stream)

    def list(self) -> list[dict[str, Any]] | CallError:
        """Every shard, or the failure; a denied ListShards switches to DescribeStream (once)."""
        listed = self._list()
        self.listed = self.listed or not isinstance(listed, CallError)
        return listed

    def retry_in(
        self, failure: CallError, backoff: RetryPolicy, now: float, random: Callable[[], float]
    ) -> float:
        """Seconds until listing again after a transient failure.

        Raises:
            DeliveryError: No listing ever succeeded and ``backoff``'s budget is spent (a
                wrong endpoint, no network): a run that never reached the stream ends.
        """
        if self.listed:
            logger.warning(
                "%s; keeping the last listing",
                listing_failure(failure),
                extra={"stream": self.stream, "error_code": failure.code},
            )
            return backoff.max_delay
        self._failures += 1
        self._first_failure = now if self._first_failure is None else self._first_failure
        delay = backoff.next_delay(self._failures, now - self._first_failure, random)
        if delay is None and failure.connection:
            given_up = attrs.evolve(failure, retryable=False)
            raise refusal_error(given_up, self.stream, _region(self.client))
        if delay is None:
            seconds = now - self._first_failure
            msg = f"{listing_failure(failure)} on every try for {seconds:.0f} s: never listed"
            raise DeliveryError(msg, error_code=failure.code)
        logger.warning(
            "%s; no listing yet, trying again in %.1f s",
            listing_failure(failure),
            delay,
            extra={"stream": self.stream, "error_code": failure.code},
        )
        return delay


def _region(client: Any) -> str | None:
    return getattr(getattr(client, "meta", None), "region_name", None)


def refusal_error(failure: CallError, stream: str, region: str | None) -> DeliveryError:
    """A Kinesis failure retrying cannot fix, as the error that says what to do."""
    return fatal_error(
        failure,
        resource=f"Kinesis stream {stream!r}",
        region=region,
        not_found_hint="fix stream_name / region (or the shard was trimmed)",
        permission=f"kinesis:{failure.operation}",
        permission_hint=(
            " (the importer needs kinesis:ListShards — or kinesis:DescribeStream — "
            "kinesis:GetShardIterator and kinesis:GetRecords)"
        ),
    )


@attrs.frozen
class Fetched:
    """What one read of a shard brought: a new iterator (when one was asked for) and a page.

    Attributes:
        iterator: The new shard iterator, its failure, or None when the shard had one.
        page: The ``GetRecords`` answer, its failure, or None when no iterator was got.
        seconds: How long the ``GetRecords`` call took (0 when none was made).
    """

    iterator: str | CallError | None
    page: RecordsPage | CallError | None
    seconds: float = 0.0


def fetch(client: Any, iterator: str | None, params: dict[str, Any] | None, limit: int) -> Fetched:
    """``GetShardIterator`` with ``params`` when there is no ``iterator``, then ``GetRecords``.

    No state is touched: it runs in any thread, several shards at once.
    """
    new: str | CallError | None = None
    if iterator is None:
        new = attempt(client.get_shard_iterator, "GetShardIterator", shard_iterator, **params or {})
        if isinstance(new, CallError):
            return Fetched(new, None)
        iterator = new
    start = time.perf_counter()
    page = attempt(
        client.get_records, "GetRecords", records_page, ShardIterator=iterator, Limit=limit
    )
    return Fetched(new, page, time.perf_counter() - start)


def fetch_in_order(
    pool: Executor,
    client: Any,
    shards: Sequence[Shard],
    *,
    prepare: Callable[[Shard], dict[str, Any] | None],
    limit: int,
    window: int,
) -> Iterator[tuple[Shard, Fetched]]:
    """Read up to ``window`` shards at once in ``pool``; yield each read in the shards' order.

    ``prepare(shard)`` gives the iterator request (or None) in the caller's thread, just before
    the shard's read is submitted; the next shard is submitted as one is yielded. Reads still
    in flight when the caller stops are dropped (cancelled when not begun): nothing is lost,
    since no checkpoint moved for them.
    """
    waiting = iter(shards)
    pending: deque[tuple[Shard, Future[Fetched]]] = deque()

    def submit(shard: Shard) -> None:
        params = prepare(shard)
        pending.append((shard, pool.submit(fetch, client, shard.iterator, params, limit)))

    try:
        for shard in itertools.islice(waiting, window):
            submit(shard)
        while pending:
            shard, future = pending.popleft()
            yield shard, future.result()
            following = next(waiting, None)
            if following is not None:
                submit(following)
    finally:
        for _, future in pending:
            future.cancel()


def listing_failure(failure: CallError) -> str:
    """Why a shard listing failed, for the warning that the last one is kept."""
    if failure.malformed:
        return failure.message
    if failure.connection:
        return f"ListShards failed ({failure.message})"
    return f"{failure.operation} failed ({failure.code})"
