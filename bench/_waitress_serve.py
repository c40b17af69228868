"""The same WebhookReceiver under waitress (WSGI, threads), for bench/serve.py's comparison.

Run:  python bench/_waitress_serve.py SETTINGS.json PORT ENDPOINT
Each request holds one of waitress's threads while its records wait for Firehose (WSGI has no
other way), so it runs with a thread per client.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import waitress

from streambridge import FirehoseForwarder, ForwarderSettings
from streambridge.forwarder.webhook import WebhookReceiver


def main() -> None:
    """Serve until killed."""
    settings_path, port, endpoint = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    mapping = json.loads(Path(settings_path).read_text(encoding="utf-8"))
    settings = ForwarderSettings.from_mparticle(
        {
            **mapping,
            "AWS Region Endpoint": "us-east-1",
            "Access Key ID": "x",
            "Secret Access Key": "x",
        }
    )
    client = FirehoseForwarder.from_settings(settings, endpoint_url=endpoint).client
    receiver = WebhookReceiver(
        lambda: FirehoseForwarder(client, settings, max_in_flight=1),
        authorization=os.environ["STREAMBRIDGE_AUTHORIZATION"],
    )

    def app(environ: dict[str, Any], start: Callable[..., Any]) -> Iterable[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        headers = {
            key[5:].replace("_", "-").lower(): value
            for key, value in environ.items()
            if key.startswith("HTTP_")
        }
        answer = receiver.answer(environ["REQUEST_METHOD"], environ["PATH_INFO"], headers, body)
        data = answer.encoded()
        start(f"{answer.status} X", answer.all_headers(len(data)))
        return [data]

    waitress.serve(app, host="127.0.0.1", port=port, threads=64, connection_limit=256, _quiet=True)


if __name__ == "__main__":
    main()
