"""The ASGI application of ``streambridge serve``: mParticle's Webhook POSTs to Firehose.

A thin adapter over :class:`~streambridge.forwarder.webhook.WebhookReceiver`: it reads the body
as it arrives (in the event loop: a slow client costs no thread), within the receiver's body
limit and a time limit, then answers in a bounded pool of threads, each forwarding with a
forwarder of its own. Run it under ``streambridge serve`` (uvicorn), or under any ASGI server::

    from streambridge.forwarder.asgi import WebhookApp
    app = WebhookApp(receiver)   # e.g. `hypercorn module:app`

No framework and no dependency: the ASGI protocol is three small dictionaries.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from streambridge.forwarder.gathering import Delivered
from streambridge.forwarder.webhook import Answer, WebhookReceiver

__all__ = ["WebhookApp"]

logger = logging.getLogger("streambridge.forwarder.asgi")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class WebhookApp:
    """ASGI application answering each request with a :class:`WebhookReceiver`.

    Attributes:
        receiver: The request -> answer function.
        workers: Requests forwarded at once (threads); more wait, their bodies read.
        body_timeout: Seconds a whole body may take to arrive (408 after that).
    """

    def __init__(
        self, receiver: WebhookReceiver, *, workers: int = 32, body_timeout: float = 30.0
    ) -> None:
        """An application; its threads start with the first request."""
        if workers < 1:
            msg = f"workers must be at least 1, got {workers}"
            raise ValueError(msg)
        self.receiver = receiver
        self.workers = workers
        self.body_timeout = body_timeout
        self._pool: ThreadPoolExecutor | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The ASGI entry point (``http`` and ``lifespan`` scopes)."""
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":  # a websocket: not ours
            return
        headers = {
            name.decode("latin-1").lower(): value.decode("latin-1")
            for name, value in scope.get("headers", [])
        }
        method = scope["method"]
        answer: Answer | None = None
        body = b""
        if method == "POST":
            try:
                body = await asyncio.wait_for(self._body(headers, receive), self.body_timeout)
            except _BodyTooLargeError:
                limit = self.receiver.max_body_bytes
                answer = Answer(
                    413,
                    {"status": "refused", "reason": f"the body is over {limit} bytes"},
                    (("connection", "close"),),
                )
            except asyncio.TimeoutError:
                reason = f"the body did not arrive within {self.body_timeout:g}s"
                answer = Answer(
                    408, {"status": "refused", "reason": reason}, (("connection", "close"),)
                )
            except _DisconnectedError:
                return  # the client went away: nothing to answer, nothing forwarded
        if answer is None:
            answer = await self._answer(method, scope.get("path", "/"), headers, body)
        await _send(send, answer, head=method == "HEAD")

    async def _answer(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Answer:
        """Take the request in a worker thread; wait for its records without one."""
        loop = asyncio.get_running_loop()
        receiver = self.receiver
        taken = await loop.run_in_executor(
            self._executor(), receiver.take, method, path, headers, body
        )
        if isinstance(taken, Answer):
            return taken
        settled: asyncio.Future[Delivered] = loop.create_future()

        def done(delivered: Delivered) -> None:
            loop.call_soon_threadsafe(_settle, settled, delivered)

        receiver.submit(taken.records, done)
        delivered = await settled
        if taken.prepared.failed:  # records it could never send: written to the dead letter
            return await loop.run_in_executor(self._executor(), receiver.conclude, taken, delivered)
        return receiver.conclude(taken, delivered)

    async def _body(self, headers: dict[str, str], receive: Receive) -> bytes:
        limit = self.receiver.max_body_bytes
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise _BodyTooLargeError
        parts: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _DisconnectedError
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise _BodyTooLargeError
            parts.append(chunk)
            if not message.get("more_body", False):
                return b"".join(parts)

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="streambridge-serve")
        return self._pool

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def close(self) -> None:
        """Wait for the requests being taken and forwarded, then stop the threads."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        self.receiver.close()


def _settle(future: asyncio.Future[Delivered], delivered: Delivered) -> None:
    if not future.done():  # the request's task may have been cancelled (the client left)
        future.set_result(delivered)


class _BodyTooLargeError(Exception):
    """The body is over the receiver's limit."""


class _DisconnectedError(Exception):
    """The client went away before its body was whole."""


async def _send(send: Send, answer: Answer, *, head: bool = False) -> None:
    data = answer.encoded()
    headers = [(n.encode("latin-1"), v.encode("latin-1")) for n, v in answer.all_headers(len(data))]
    await send({"type": "http.response.start", "status": answer.status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else data})
