"""WebhookApp, the ASGI adapter: bodies read within their limits, answers from the receiver."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterable, MutableMapping
from typing import Any

import pytest

from streambridge import ForwardResult
from streambridge.forwarder.asgi import WebhookApp
from streambridge.forwarder.gathering import Delivered
from streambridge.forwarder.webhook import Answer, Taken


class Recorder:
    """A receiver stand-in that records what it was handed (the adapter's only collaborator).

    A body starting with ``{"deliver"`` is taken (its bytes the one record), delivered from
    another thread, and concluded; any other is answered at once.
    """

    max_body_bytes = 100

    def __init__(self) -> None:
        """No calls yet."""
        self.calls: list[tuple[str, str, dict[str, str], bytes]] = []
        self.closed = False

    def take(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Any:
        """Record the call; 200 with the body's length, or the body taken for delivery."""
        self.calls.append((method, path, headers, body))
        if body.startswith(b'{"deliver"'):
            return Taken([body], ForwardResult())
        return Answer(200, {"status": "ok", "got": len(body)}, (("x-test", "1"),))

    def submit(self, records: list[bytes], done: Any) -> None:
        """Settle from another thread, as the gatherer does."""
        threading.Timer(0.05, done, (Delivered(len(records)),)).start()

    def conclude(self, taken: Taken, delivered: Delivered) -> Answer:
        """202 with what was delivered."""
        return Answer(202, {"status": "ok", "sent": delivered.sent})

    def close(self) -> None:
        """Remember being closed."""
        self.closed = True


def run(
    app: WebhookApp,
    chunks: Iterable[bytes | None],
    *,
    method: str = "POST",
    headers: list[tuple[bytes, bytes]] | None = None,
    pause: float = 0.0,
) -> list[MutableMapping[str, Any]]:
    """Drive one request through ``app``; a None chunk is the client going away."""
    parts = list(chunks)

    async def go() -> list[MutableMapping[str, Any]]:
        sent: list[MutableMapping[str, Any]] = []
        queue = list(parts)

        async def receive() -> dict[str, Any]:
            if pause:
                await asyncio.sleep(pause)
            if not queue:
                await asyncio.sleep(3600)
            chunk = queue.pop(0)
            if chunk is None:
                return {"type": "http.disconnect"}
            return {"type": "http.request", "body": chunk, "more_body": bool(queue)}

        async def send(message: MutableMapping[str, Any]) -> None:
            sent.append(message)

        scope = {
            "type": "http",
            "method": method,
            "path": "/hook",
            "headers": headers or [(b"Authorization", b"Basic x"), (b"content-type", b"a/b")],
        }
        await app(scope, receive, send)
        return sent

    return asyncio.run(go())


def status_and_body(sent: list[MutableMapping[str, Any]]) -> tuple[int, dict[str, Any]]:
    """The answer's status and decoded body."""
    return sent[0]["status"], json.loads(sent[1]["body"])


def test_a_body_in_chunks_is_handed_over_whole_with_lower_case_headers() -> None:
    """Three chunks become one body; header names arrive in lower case; the answer is sent."""
    recorder = Recorder()
    app = WebhookApp(recorder, workers=2)  # type: ignore[arg-type]
    sent = run(app, [b'{"a"', b":", b"1}"])
    app.close()
    assert (200, {"status": "ok", "got": 7}) == status_and_body(sent)
    assert [("POST", "/hook", {"authorization": "Basic x", "content-type": "a/b"}, b'{"a":1}')] == [
        (m, p, h, b) for m, p, h, b in recorder.calls
    ]
    headers = dict(sent[0]["headers"])
    assert b"1" == headers[b"x-test"]
    assert str(len(sent[1]["body"])).encode() == headers[b"content-length"]


def test_a_taken_batch_is_answered_once_delivered_from_another_thread() -> None:
    """Taken, submitted, settled from another thread, concluded: awaited without a thread."""
    recorder = Recorder()
    app = WebhookApp(recorder, workers=1)  # type: ignore[arg-type]
    assert (202, {"status": "ok", "sent": 1}) == status_and_body(run(app, [b'{"deliver": 1}']))
    app.close()
    assert recorder.closed


def test_a_body_past_the_limit_is_413_without_reading_it_all() -> None:
    """A declared or streamed body over the limit: 413, the receiver never called."""
    recorder = Recorder()
    app = WebhookApp(recorder)  # type: ignore[arg-type]
    declared = [(b"content-length", b"101")]
    assert 413 == status_and_body(run(app, [b"x"], headers=declared))[0]
    streamed = run(app, [b"x" * 60, b"x" * 60, b"never read"])
    assert 413 == status_and_body(streamed)[0]
    assert [(b"connection", b"close")] == [
        h for h in streamed[0]["headers"] if h[0] == b"connection"
    ]
    assert [] == recorder.calls


def test_a_slow_body_is_408_and_a_client_that_left_gets_nothing() -> None:
    """A body slower than body_timeout: 408; a disconnect mid-body: no answer, no call."""
    recorder = Recorder()
    slow = WebhookApp(recorder, body_timeout=0.2)  # type: ignore[arg-type]
    sent = run(slow, [b"{", b"}"], pause=0.15)
    assert 408 == status_and_body(sent)[0]
    assert [] == run(slow, [b"{", None])
    assert [] == recorder.calls


def test_other_methods_reach_the_receiver_without_a_body() -> None:
    """GET and HEAD are answered by the receiver (HEAD without a body)."""
    recorder = Recorder()
    app = WebhookApp(recorder)  # type: ignore[arg-type]
    assert 200 == status_and_body(run(app, [], method="GET"))[0]
    head = run(app, [], method="HEAD")
    assert b"" == head[1]["body"]
    assert [("GET", b""), ("HEAD", b"")] == [(m, b) for m, _, _, b in recorder.calls]
    app.close()


def test_lifespan_and_other_scopes() -> None:
    """Startup and shutdown are acknowledged (shutdown stops the threads); websockets ignored."""
    app = WebhookApp(Recorder(), workers=1)  # type: ignore[arg-type]
    run(app, [b"{}"])
    assert app.__dict__["_pool"] is not None
    messages = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[MutableMapping[str, Any]] = []

    async def go() -> None:
        async def receive() -> dict[str, Any]:
            return messages.pop(0)

        async def send(message: MutableMapping[str, Any]) -> None:
            sent.append(message)

        await app({"type": "lifespan"}, receive, send)
        await app({"type": "websocket"}, receive, send)

    asyncio.run(go())
    assert ["lifespan.startup.complete", "lifespan.shutdown.complete"] == [m["type"] for m in sent]
    assert app.__dict__["_pool"] is None
    with pytest.raises(ValueError, match="at least 1"):
        WebhookApp(Recorder(), workers=0)  # type: ignore[arg-type]
