"""Calls to Kinesis that take more than one request: the importer's call -> interpret step.

The shard listing comes from ``ListShards``, or — where a policy grants ``DescribeStream`` but
not ``ListShards``, as PostHog's documented policy does — from ``DescribeStream``, paginated
with ``ExclusiveStartShardId``.
"""

from __future__ import annotations

import logging
from typing import Any

from streambridge._aws import CallError, attempt, fatal_error
from streambridge.errors import DeliveryError
from streambridge.importer.answers import described_shards_page, shards_page

__all__ = ["ShardLister", "describe_shards", "list_shards", "refusal_error"]

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

    def list(self) -> list[dict[str, Any]] | CallError:
        """Every shard, or the failure; a denied ListShards switches to DescribeStream (once)."""
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
            )
            self.describe = True
        return describe_shards(self.client, self.stream)


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
