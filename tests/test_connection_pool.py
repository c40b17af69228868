"""Calls in flight never outnumber the client's pooled connections (issue 11, a neighbour).

Both shells keep up to 16 calls in flight by default, and botocore's client keeps 10
connections unless told otherwise: each call beyond the pool opened a connection of its own,
which urllib3 then threw away with a "Connection pool is full" warning — on AWS, a new TLS
handshake per call, and a warning per call in the user's logs. These tests go over real HTTP
to a loopback stand-in (``bench/_stub_kinesis.py``) that holds each call 50 ms and counts the
most calls it held at once.
"""

from __future__ import annotations

import importlib.util
import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from streambridge import (
    FirehoseForwarder,
    ForwarderSettings,
    ImporterSettings,
    KinesisImporter,
)

_SPEC = importlib.util.spec_from_file_location(
    "_stub_kinesis", Path(__file__).parents[1] / "bench" / "_stub_kinesis.py"
)
assert _SPEC is not None
assert _SPEC.loader is not None
stub_kinesis: Any = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(stub_kinesis)

POOL_FULL = "Connection pool is full"

pytestmark = pytest.mark.integration


@pytest.fixture
def stub() -> Iterator[tuple[Any, str]]:
    """A 32-shard caught-up stream (and a Firehose that accepts all) with 50 ms a call."""
    state = stub_kinesis.Stub(shards=32, records=0, latency=0.05)
    server = stub_kinesis.serve(state)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def client(service: str, endpoint: str, **config: Any) -> Any:
    """A boto3 client for the stand-in; botocore's defaults unless ``config`` says otherwise."""
    return boto3.client(  # type: ignore[call-overload]
        service,
        region_name="us-east-1",
        endpoint_url=endpoint,
        aws_access_key_id="x",
        aws_secret_access_key="x",
        config=Config(**config) if config else None,
    )


def pool_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    """urllib3's warnings that it threw a connection away."""
    return [r.getMessage() for r in caplog.records if POOL_FULL in r.getMessage()]


def import_a_while(importer: KinesisImporter) -> None:
    """Two passes over the 32 shards."""
    totals = importer.run(max_polls=2)
    assert totals.calls >= 32


def forward_a_while(forwarder: FirehoseForwarder) -> None:
    """Forty calls of 50 records, every record delivered."""
    result = forwarder.send([b'{"n": %d}' % n for n in range(40 * 50)])  # 40 calls of 50
    assert result.sent == 40 * 50
    assert result.failed == ()


KEYS: dict[str, Any] = {"region": "us-east-1", "access_key_id": "x", "secret_access_key": "x"}
IMPORTER = ImporterSettings(stream_name="s", event_key="event", **KEYS)
FORWARDER = ForwarderSettings(delivery_stream_name="d", send_as_batch=False, **KEYS)


def test_importer_with_botocores_default_pool_keeps_within_it(
    stub: tuple[Any, str], caplog: pytest.LogCaptureFixture
) -> None:
    """A default client (10 connections): 10 shards at once, said once at INFO."""
    state, endpoint = stub
    caplog.set_level(logging.INFO)
    importer = KinesisImporter(client("kinesis", endpoint), IMPORTER, sink=lambda _e: None)
    import_a_while(importer)
    assert pool_warnings(caplog) == []
    assert 5 <= state.most_at_once <= 10  # still shards read at once, within the pool
    assert importer.max_in_flight == 10
    assert any("capped at the client's 10 pooled connections" in m for m in caplog.messages)


def test_importer_with_a_bigger_pool_reads_more_shards_at_once(
    stub: tuple[Any, str], caplog: pytest.LogCaptureFixture
) -> None:
    """The pool is the only cap: a client with 32 connections reads 24 shards at once."""
    state, endpoint = stub
    kinesis = client("kinesis", endpoint, max_pool_connections=32)
    importer = KinesisImporter(kinesis, IMPORTER, sink=lambda _e: None, max_in_flight=24)
    import_a_while(importer)
    assert pool_warnings(caplog) == []
    assert 11 <= state.most_at_once <= 24


def test_importer_from_settings_pools_as_many_connections_as_calls_in_flight(
    stub: tuple[Any, str], caplog: pytest.LogCaptureFixture
) -> None:
    """The client ``from_settings`` builds keeps one connection per call in flight."""
    state, endpoint = stub
    importer = KinesisImporter.from_settings(
        IMPORTER, endpoint_url=endpoint, sink=lambda _e: None, max_in_flight=12
    )
    import_a_while(importer)
    assert pool_warnings(caplog) == []
    assert 11 <= state.most_at_once <= 12


def test_forwarder_with_botocores_default_pool_keeps_within_it(
    stub: tuple[Any, str], caplog: pytest.LogCaptureFixture
) -> None:
    """A default client: the adaptive limit grows to the pool, not past it."""
    state, endpoint = stub
    forwarder = FirehoseForwarder(client("firehose", endpoint), FORWARDER, max_batch_records=50)
    forward_a_while(forwarder)
    assert pool_warnings(caplog) == []
    assert 5 <= state.most_at_once <= 10


def test_forwarder_from_settings_pools_as_many_connections_as_calls_in_flight(
    stub: tuple[Any, str], caplog: pytest.LogCaptureFixture
) -> None:
    """``from_settings``: 16 connections for the default 16 calls in flight."""
    state, endpoint = stub
    forwarder = FirehoseForwarder.from_settings(
        FORWARDER, endpoint_url=endpoint, max_batch_records=50
    )
    forward_a_while(forwarder)
    assert pool_warnings(caplog) == []
    assert 11 <= state.most_at_once <= 16
