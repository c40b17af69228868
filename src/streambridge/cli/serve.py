"""``streambridge serve``: receive mParticle's Webhook POSTs and forward them to Firehose.

The server is uvicorn (the ``serve`` extra), running :class:`~streambridge.forwarder.asgi.
WebhookApp`: bodies are read in its event loop (a slow client holds no thread), forwarding
runs in a bounded pool of threads, and SIGTERM / SIGINT stop it gracefully — no new
connection is taken, the requests in hand are answered (delivered or refused), then it exits.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

from streambridge.cli._common import (
    EXIT_DEAD_LETTER,
    EXIT_OK,
    FailedError,
    UsageError,
    aws_client,
    aws_options,
    forwarding_options,
    metrics_options,
    on_signals,
    open_dead_letters,
    restore_signals,
    say,
    start_metrics,
)
from streambridge.cli.forward import _forwarder_settings
from streambridge.forwarder.forwarder import FirehoseForwarder
from streambridge.forwarder.webhook import MAX_BODY_BYTES, WebhookReceiver
from streambridge.retry import RetryPolicy

__all__ = ["add_parser"]

#: The environment variable holding the expected ``Authorization`` header value.
AUTHORIZATION_VARIABLE = "STREAMBRIDGE_AUTHORIZATION"

#: How long a failing Firehose call is retried before the request is answered 503 (mParticle
#: then retries it): well within a webhook's wait, unlike ``forward``'s two minutes.
SERVE_RETRY_BUDGET = 10.0

logger = logging.getLogger("streambridge.serve")


def add_parser(commands: Any) -> None:
    """Add the ``serve`` command to ``commands`` (argparse sub-parsers)."""
    serve = commands.add_parser(
        "serve",
        help="receive mParticle's Webhook POSTs and forward each batch to Firehose",
        description="Receive mParticle's Webhook integration (one batch per POST, any path) "
        "and forward each batch to Firehose with the settings file's connection settings. "
        "A request is answered 2xx only once every record was accepted by Firehose. The "
        f"expected Authorization header value comes from ${AUTHORIZATION_VARIABLE} or "
        "--authorization-file (never the command line).",
    )
    serve.add_argument("--stream", help="the Firehose delivery stream (Delivery Stream Name)")
    serve.add_argument("--settings", type=Path, help="a JSON file of mParticle connection settings")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    serve.add_argument("--port", type=int, default=8080, help="port to listen on (8080)")
    serve.add_argument(
        "--authorization-file",
        type=Path,
        metavar="FILE",
        help="a file holding the expected Authorization header value (e.g. 'Basic ...')",
    )
    serve.add_argument(
        "--no-auth",
        action="store_true",
        help="accept requests without an Authorization header (only behind something that "
        "authenticates them)",
    )
    serve.add_argument(
        "--dead-letter",
        metavar="FILE|s3://BUCKET/PREFIX|SQS-URL",
        help="keep every record not delivered (and every malformed event), with the reason",
    )
    serve.add_argument(
        "--max-body-bytes",
        type=int,
        default=MAX_BODY_BYTES,
        metavar="N",
        help=f"largest body, and gzip body once decompressed (default {MAX_BODY_BYTES})",
    )
    serve.add_argument(
        "--workers",
        type=int,
        default=8,
        metavar="N",
        help="threads reading batches into records (default 8); requests waiting for "
        "Firehose hold none",
    )
    serve.add_argument(
        "--max-connections",
        type=int,
        default=256,
        metavar="N",
        help="connections and requests held at once; past it new ones are answered 503 "
        "(default 256)",
    )
    serve.add_argument(
        "--body-timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="a body not whole within this is answered 408 (default 30): a client sending a "
        "byte at a time holds no worker",
    )
    forwarding_options(serve)
    aws_options(serve)
    metrics_options(serve)
    serve.set_defaults(run=_serve)


def _authorization(args: argparse.Namespace) -> str | None:
    """The expected header value from the environment or a file; None only with --no-auth."""
    from_env = os.environ.get(AUTHORIZATION_VARIABLE)
    if args.authorization_file is not None and from_env is not None:
        raise UsageError(
            f"both ${AUTHORIZATION_VARIABLE} and --authorization-file are given: use one"
        )
    value = from_env
    if args.authorization_file is not None:
        try:
            value = args.authorization_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            why = getattr(exc, "strerror", None) or "not UTF-8 text"
            raise UsageError(f"cannot read --authorization-file: {why}") from None
    if value is not None:  # whitespace around a header value is not part of it (HTTP)
        value = value.strip()
    if value is not None and not value:
        raise UsageError("the expected Authorization value is empty")
    if value is None and not args.no_auth:
        raise UsageError(
            f"no Authorization value: set ${AUTHORIZATION_VARIABLE} or --authorization-file "
            "(the value mParticle's Webhook integration sends), or pass --no-auth"
        )
    if value is not None and args.no_auth:
        raise UsageError("--no-auth and an Authorization value: use one")
    return value


#: glibc's mallopt parameter for the most malloc arenas (malloc.h).
_M_ARENA_MAX = -8


def _fewer_malloc_arenas() -> None:
    """Two malloc arenas instead of glibc's eight per core, unless ``MALLOC_ARENA_MAX`` says.

    Each thread that allocates gets an arena of its own, and each keeps its freed memory:
    under 50 clients serve's peak memory was 1.2-1.3x its peak under 5; with two arenas, under
    1.2x (``bench/serve.py``), at no measured cost in throughput. Not glibc: nothing to do.
    """
    if os.environ.get("MALLOC_ARENA_MAX") or not sys.platform.startswith("linux"):
        return
    import ctypes  # noqa: PLC0415 - serve only
    import ctypes.util  # noqa: PLC0415

    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        libc.mallopt(_M_ARENA_MAX, 2)
    except (OSError, AttributeError, TypeError):  # musl and others: no mallopt, or no libc
        pass


def _serve(args: argparse.Namespace) -> int:
    try:
        import uvicorn  # noqa: PLC0415
    except ModuleNotFoundError:
        raise UsageError(
            "serve needs the 'serve' extra (uvicorn): pip install 'streambridge[serve]'"
        ) from None
    from streambridge.forwarder.asgi import WebhookApp  # noqa: PLC0415

    authorization = _authorization(args)
    settings = _forwarder_settings(args)
    if settings.wait_for_complete_batch:
        raise UsageError(
            "Wait for Complete Batch holds sessions in memory until their session_end: serve "
            "answers only once records are delivered, so it cannot use it; turn it off"
        )
    for name in ("max_body_bytes", "workers", "max_connections", "body_timeout"):
        if not getattr(args, name) > 0:
            raise UsageError(f"--{name.replace('_', '-')} must be more than 0")
    client = aws_client(args, "firehose", keys=(settings.access_key_id, settings.secret_access_key))
    letters = open_dead_letters(args.dead_letter, args)
    budget = args.retry_budget if args.retry_budget is not None else SERVE_RETRY_BUDGET
    if budget <= 0:
        raise UsageError("--retry-budget must be more than 0 seconds")
    retry = RetryPolicy(max_elapsed=budget, max_attempts=1_000)

    def forwarder() -> FirehoseForwarder:
        return FirehoseForwarder(
            client,
            settings,
            retry=retry,
            record_delimiter=b"\n" if args.newline else b"",
            on_drop=letters,
            max_in_flight=1,  # the gatherer keeps calls in flight; no pool of its own each
            put_mode=args.put_mode,
        )

    receiver = WebhookReceiver(
        forwarder,
        authorization=authorization,
        dead_letter=letters,
        max_body_bytes=args.max_body_bytes,
    )
    app = WebhookApp(receiver, workers=args.workers, body_timeout=args.body_timeout)
    if authorization is None:
        logger.warning("serve: --no-auth: every request is accepted, whoever sends it")
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        limit_concurrency=args.max_connections + 1,  # uvicorn counts the new one too
        log_level="warning" if args.quiet else "info",
        access_log=False,
        server_header=False,
        lifespan="on",
    )
    server = uvicorn.Server(config)
    _fewer_malloc_arenas()  # before the threads start
    stopped: list[int] = []
    # uvicorn stops gracefully on SIGTERM / SIGINT, then raises the signal again: caught here,
    # so that the dead letters are closed and a graceful stop exits 0 (systemd, Kubernetes)
    previous = on_signals(stopped.append)
    stop_metrics = start_metrics(args, receiver.metrics, "forwarder", settings.delivery_stream_name)
    try:
        server.run()
    finally:
        restore_signals(previous)
        stop_metrics()
        app.close()
        if letters is not None:
            letters.close()
    if letters is not None and letters.unwritten:
        raise FailedError(
            f"{letters.unwritten} record(s) not delivered could not be written to "
            f"{args.dead_letter!r} ({letters.last_error}); their requests were answered 5xx",
            EXIT_DEAD_LETTER,
        )
    how = f" by {signal.Signals(stopped[0]).name}" if stopped else ""
    say(f"serve stopped{how}; every request taken was answered")
    return EXIT_OK
