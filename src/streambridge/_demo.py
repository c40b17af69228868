"""The README's first command: forward the sample batches to a local Firehose and show it."""

from __future__ import annotations

import json
from collections import Counter
from importlib import resources
from typing import Any

from streambridge.forwarder import FirehoseForwarder
from streambridge.results import ForwardResult
from streambridge.settings import ForwarderSettings

STREAM = "streambridge-demo"


def sample_batches() -> list[tuple[str, Any]]:
    """The mParticle sample batches shipped with the package, as (file name, batch)."""
    folder = resources.files("streambridge") / "samples"
    return [
        (item.name, json.loads(item.read_text(encoding="utf-8")))
        for item in sorted(folder.iterdir(), key=lambda entry: entry.name)
        if item.name.endswith(".json")
    ]


def run_demo() -> int:
    """Start the embedded local AWS, forward the samples, read back what was delivered."""
    from streambridge.testing import local_aws  # noqa: PLC0415 - needs the `local` extra

    with local_aws() as aws:
        print(f"local AWS (moto) on {aws.endpoint_url} - no AWS account is used")
        bucket = aws.create_delivery_stream(STREAM)
        settings = ForwarderSettings(delivery_stream_name=STREAM)
        forwarder = FirehoseForwarder(aws.client("firehose"), settings, record_delimiter=b"\n")
        info = forwarder.check()
        print(
            f"delivery stream {info.name!r}: {info.status}, source {info.stream_type}, "
            f"S3 bucket {bucket!r}"
        )
        print("forwarding the sample batches with mParticle's default connection settings:")
        total = ForwardResult()
        for name, batch in sample_batches():
            result = forwarder.forward(batch)
            total += result
            events = len(batch.get("events") or ())
            print(f"  {name:<46} {events:>3} events -> {_outcome(result)}")
        print(
            f"sent {total.sent} records in {total.api_calls} call(s); failed {len(total.failed)},"
            f" skipped {len(total.skipped)}, rejected {len(total.rejected)}, "
            f"{total.filtered_events} events filtered by settings, "
            f"{total.dropped_events} malformed events dropped"
        )
        delivered = aws.delivered(STREAM)
        types = Counter(
            str(event.get("event_type"))
            for record in delivered
            for event in record.get("events", [])
        )
        print(f"read back from S3: {len(delivered)} records, {sum(types.values())} events")
        print("  " + ", ".join(f"{kind} {count}" for kind, count in types.most_common()))
        stripped = [
            key
            for key in ("mp_deviceid", "context")
            if all(key not in record for record in delivered)
        ]
        print(
            f"  not forwarded (default settings): {', '.join(stripped)}; "
            f"user_attribute_change and user_identity_change events"
        )
    ok = not total.failed and len(delivered) == total.sent
    print("demo " + ("OK" if ok else "FAILED"))
    return 0 if ok else 1


def _outcome(result: ForwardResult) -> str:
    parts = [f"{result.sent} record"]
    if result.filtered_events:
        parts.append(f"{result.filtered_events} filtered")
    if result.dropped_events:
        parts.append(f"{result.dropped_events} malformed dropped")
    if result.skipped:
        parts.append("skipped: " + result.skipped[0].reason)
    return ", ".join(parts)
