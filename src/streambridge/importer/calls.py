"""Calls to Kinesis that take more than one request: the importer's call -> interpret step."""

from __future__ import annotations

from typing import Any

from streambridge._aws import CallError, attempt
from streambridge.importer.answers import shards_page

__all__ = ["list_shards"]


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
