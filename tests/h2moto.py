"""moto's server under hypercorn: HTTP/1.1 and HTTP/2 (h2c, prior knowledge) on one port.

The KCL daemon's Kinesis client speaks only HTTP/2 (the AWS SDK for Java's Netty client, set
so by the KCL for polling too), and moto's own server (werkzeug) only HTTP/1.1: it answers
505. hypercorn, a production ASGI/WSGI server, serves moto's own WSGI application over both,
so the daemon's Kinesis and DynamoDB clients and boto3 all talk to the same moto.

Run: ``python tests/h2moto.py PORT`` (loopback only); stops on SIGTERM.
"""

from __future__ import annotations

import asyncio
import signal
import sys


def main(port: int) -> None:
    """Serve moto on 127.0.0.1:``port`` until SIGTERM or SIGINT."""
    from hypercorn.asyncio import serve  # noqa: PLC0415 - a dev dependency
    from hypercorn.config import Config  # noqa: PLC0415
    from moto.moto_server.werkzeug_app import (  # noqa: PLC0415
        DomainDispatcherApplication,
        create_backend_app,
    )

    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.loglevel = "WARNING"
    config.graceful_timeout = 1.0

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        app = DomainDispatcherApplication(create_backend_app)
        await serve(app, config, mode="wsgi", shutdown_trigger=stop.wait)

    asyncio.run(run())


if __name__ == "__main__":
    main(int(sys.argv[1]))
