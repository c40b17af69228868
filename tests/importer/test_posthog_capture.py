"""PostHogSink speaks PostHog's batch API itself: the same request as posthog-python, at once.

The request is pinned against posthog-python's own ``batch_post`` (the ``posthog`` extra of
the dev install) through the local capture stand-in: same fields, same events, gzip. Requests
of one call go out together, calls from several threads share the sink, and an answer cut
short is no answer.
"""

from __future__ import annotations

import gzip
import socket
import threading
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from streambridge import (
    ImporterSettings,
    PostHogSink,
    PostHogUnavailableError,
    RecordConverter,
    RetryPolicy,
)
from streambridge.importer import capture
from streambridge.importer import events as events_module
from streambridge.importer.capture import CONCURRENCY, _Urllib3, ingestion_host
from streambridge.testing import FakeClock, LocalPostHog, local_posthog
from tests.importer.test_sinks import events


@pytest.fixture(name="posthog")
def _posthog() -> Iterator[LocalPostHog]:
    with local_posthog() as stand_in:
        yield stand_in


def test_the_request_is_posthog_pythons_own(posthog: LocalPostHog) -> None:
    """Same endpoint, fields, events and encoding as posthog-python's batch_post."""
    batch_post = pytest.importorskip("posthog.request").batch_post
    posthog.keep_bodies = True
    sent = events(20, nested={"a": [1, 2.5, None, "é"]}, big=2**70)
    batch_post(
        "phc_key",
        posthog.url,
        gzip=True,
        batch=[event.capture_json() for event in sent],
        historical_migration=True,
    )
    PostHogSink(api_key="phc_key", host=posthog.url + "/", historical_migration=True)(sent)
    theirs, ours = posthog.bodies
    assert set(theirs) == set(ours) == {"api_key", "batch", "historical_migration", "sent_at"}
    for name in ("api_key", "batch", "historical_migration"):
        assert theirs[name] == ours[name], name
    assert isinstance(datetime.fromisoformat(ours["sent_at"]).tzinfo, object)
    assert datetime.fromisoformat(ours["sent_at"]).utcoffset() is not None
    for headers in posthog.headers:
        assert "gzip" == headers["content-encoding"]
        assert headers["content-type"].startswith("application/json")
    assert 40 == len(posthog.events)


def test_app_hosts_are_sent_to_ingestion_as_posthog_python_does() -> None:
    """us/eu app hosts map to their ingestion hosts; a trailing slash goes."""
    assert "https://us.i.posthog.com" == ingestion_host("https://app.posthog.com/")
    assert "https://eu.i.posthog.com" == ingestion_host("https://eu.posthog.com")
    assert "http://127.0.0.1:8000" == ingestion_host(" http://127.0.0.1:8000/ ")


def test_the_chunks_of_one_call_are_in_flight_together(posthog: LocalPostHog) -> None:
    """A call of 8 requests' worth: several requests at once, never more than concurrency."""
    posthog.delay = 0.3
    sink = PostHogSink(api_key="k", host=posthog.url, max_request_bytes=2_000, concurrency=3)
    assert [] == sink(events(120, pad="x" * 100))
    assert posthog.requests >= 8
    assert 2 <= posthog.peak_in_flight <= 3
    assert list(range(120)) == sorted(e["properties"]["n"] for e in posthog.events)
    sink.close()


def test_one_sink_is_safe_from_many_threads(posthog: LocalPostHog) -> None:
    """Eight threads call one sink at once: every event arrives once, every request counted."""
    posthog.delay = 0.05
    sink = PostHogSink(api_key="k", host=posthog.url, max_request_bytes=3_000)
    batches = [events(200)[n * 25 : (n + 1) * 25] for n in range(8)]
    failures: list[BaseException] = []

    def call(batch: Any) -> None:
        try:
            assert [] == sink(batch)
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    threads = [threading.Thread(target=call, args=(batch,)) for batch in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [] == failures
    assert list(range(200)) == sorted(e["properties"]["n"] for e in posthog.events)
    assert sink.requests == posthog.requests
    assert posthog.peak_in_flight >= 2
    assert CONCURRENCY == sink.calls_in_flight


def test_a_failing_chunk_fails_the_call_after_the_others_end(posthog: LocalPostHog) -> None:
    """One chunk's outage is the call's error, raised once the other chunks were delivered."""
    forward = _Urllib3(4)

    def transport(url: str, body: bytes, headers: dict[str, str], timeout: float) -> Any:
        if b'"n":7,' in gzip.decompress(body):
            return 503, b'{"detail": "down"}', {}
        return forward(url, body, headers, timeout)

    clock = FakeClock()
    sink = PostHogSink(
        api_key="k",
        host=posthog.url,
        max_request_bytes=2_000,
        retry=RetryPolicy(max_attempts=2),
        sleep=clock.sleep,
        clock=clock,
        transport=transport,
    )
    with pytest.raises(PostHogUnavailableError, match="HTTP 503: down"):
        sink(events(60, pad="x" * 100))
    delivered = {e["properties"]["n"] for e in posthog.events}
    assert 7 not in delivered
    assert len(delivered) >= 50  # every other chunk


def _cut_short_server() -> tuple[socket.socket, list[int]]:
    """A server answering 200 with a body shorter than its Content-Length, then closing."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    answered = [0]

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                head, _, rest = data.partition(b"\r\n\r\n")
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length")
                )
                while len(rest) < length:
                    rest += conn.recv(65536)
                conn.sendall(b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"stat')
                answered[0] += 1

    threading.Thread(target=serve, daemon=True).start()
    return server, answered


def test_a_200_cut_short_is_no_answer() -> None:
    """A 200 whose body stops before its Content-Length is retried, then an outage."""
    server, answered = _cut_short_server()
    clock = FakeClock()
    sink = PostHogSink(
        api_key="k",
        host=f"http://127.0.0.1:{server.getsockname()[1]}",
        retry=RetryPolicy(max_attempts=3),
        sleep=clock.sleep,
        clock=clock,
    )
    try:
        with pytest.raises(PostHogUnavailableError, match="3 attempt"):
            sink(events(2))
    finally:
        server.close()
    assert 3 == answered[0]


def test_each_event_is_encoded_once_on_its_way_to_posthog(
    posthog: LocalPostHog, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The converter's check encodes the event; the sink sends those bytes, not its own."""
    encoded: list[object] = []

    def counting(real: Any) -> Any:
        def encode(value: object) -> bytes:
            encoded.append(value)
            return real(value)  # type: ignore[no-any-return]

        return encode

    for module in (capture, events_module):
        monkeypatch.setattr(module, "encode_record", counting(module.encode_record))
    converter = RecordConverter(ImporterSettings(stream_name="s", event_key="name"))
    records = [
        {
            "Data": b'{"name": "e%d"}' % n,
            "SequenceNumber": str(n),
            "ApproximateArrivalTimestamp": None,
        }
        for n in range(50)
    ]
    made, skipped = converter.convert("shardId-000000000000", records)
    assert ([], 50) == (skipped, len(made))
    assert 50 == len(encoded)
    PostHogSink(api_key="k", host=posthog.url)(made)
    assert 50 + posthog.requests == len(encoded)  # and one small head a request
    assert 50 == len(posthog.events)
