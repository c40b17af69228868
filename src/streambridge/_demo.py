"""The README's first command: both halves on an embedded local AWS, in a few readable lines.

1. Forward the mParticle sample batches (shipped in the package) to a local Firehose delivery
   stream and read back what S3 received.
2. Put PostHog-style records (some of them bad) on a local Kinesis stream, import them as PostHog
   events with SQLite checkpoints, and show what came out and what was skipped.
"""

from __future__ import annotations

import json
import tempfile
from collections import Counter
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from streambridge.forwarder import ForwarderSettings, ForwardResult
from streambridge.forwarder.forwarder import FirehoseForwarder
from streambridge.importer import ImporterSettings, PostHogEvent, SQLiteCheckpointStore
from streambridge.importer.importer import KinesisImporter

if TYPE_CHECKING:
    from streambridge.testing import LocalAWS

STREAM = "streambridge-demo"
KINESIS_STREAM = "streambridge-demo-clicks"

#: PostHog-app-style records: a plain one, a newline-delimited pair, one with a byte-order mark,
#: one without an event name and one that is not JSON.
CLICKS: list[bytes] = [
    b'{"properties": {"eventName": "Signed Up", "userId": "u-1", "plan": "pro"}}',
    (
        b'{"properties": {"eventName": "Viewed Page", "userId": "u-2", "plan": "free"}}\n'
        b'{"properties": {"eventName": "Viewed Pricing", "userId": "u-2", "plan": "free"}}'
    ),
    b'\xef\xbb\xbf{"properties": {"eventName": "Upgraded", "userId": "u-2", "plan": "team"}}',
    b'{"properties": {"userId": "u-3"}}',
    b"not json at all",
]


def sample_batches() -> list[tuple[str, Any]]:
    """The mParticle sample batches shipped with the package, as (file name, batch)."""
    folder = resources.files("streambridge") / "samples"
    return [
        (item.name, json.loads(item.read_text(encoding="utf-8")))
        for item in sorted(folder.iterdir(), key=lambda entry: entry.name)
        if item.name.endswith(".json")
    ]


def run_demo() -> int:
    """Start the embedded local AWS, run both halves, and report; 0 when all went as expected."""
    from streambridge.testing import local_aws  # noqa: PLC0415 - needs the `local` extra

    with local_aws() as aws:
        print(f"local AWS (moto) on {aws.endpoint_url} - no AWS account is used")
        forwarded = _forward(aws)
        imported = _import(aws)
    ok = forwarded and imported
    print("demo " + ("OK" if ok else "FAILED"))
    return 0 if ok else 1


def _forward(aws: LocalAWS) -> bool:
    """Forward the sample batches; True when everything sent was read back from S3."""
    bucket = aws.create_delivery_stream(STREAM)
    settings = ForwarderSettings(delivery_stream_name=STREAM)
    forwarder = FirehoseForwarder(aws.client("firehose"), settings)
    info = forwarder.check()
    print(
        f"1. Firehose delivery stream {info.name!r}: {info.status}, source {info.stream_type}, "
        f"S3 bucket {bucket!r}"
    )
    print("   forwarding the mParticle sample batches with the integration's default settings:")
    total = ForwardResult()
    for name, batch in sample_batches():
        result = forwarder.forward(batch)
        total += result
        events = len(batch.get("events") or ())
        print(f"   {name:<46} {events:>3} events -> {_outcome(result)}")
    print(
        f"   sent {total.sent} records in {total.api_calls} call(s); failed {len(total.failed)}, "
        f"skipped {len(total.skipped)}, rejected {len(total.rejected)}, "
        f"{total.filtered_events} events filtered by settings, "
        f"{total.dropped_events} malformed events dropped"
    )
    delivered = aws.delivered(STREAM)
    types = Counter(
        str(event.get("event_type")) for record in delivered for event in record.get("events", [])
    )
    print(f"   read back from S3: {len(delivered)} records, {sum(types.values())} events")
    print("   " + ", ".join(f"{kind} {count}" for kind, count in types.most_common()))
    return not total.failed and len(delivered) == total.sent


def _import(aws: LocalAWS) -> bool:
    """Import the PostHog-style records; True when the good ones came and the bad were skipped."""
    aws.create_stream(KINESIS_STREAM, shards=2)
    aws.put_records(KINESIS_STREAM, CLICKS)
    print(
        f"2. Kinesis stream {KINESIS_STREAM!r} (2 shards): put {len(CLICKS)} PostHog-style "
        f"records (one newline-delimited pair, one with a BOM, two bad)"
    )
    settings = ImporterSettings.from_posthog_config(
        {
            "kinesisStreamName": KINESIS_STREAM,
            "eventKey": "properties.eventName",
            "additionalPropertyMappings": "properties.userId:distinct_id,properties.plan:plan",
        },
        start_position="TRIM_HORIZON",
    )
    events: list[PostHogEvent] = []
    skipped: list[str] = []
    with (
        tempfile.TemporaryDirectory() as folder,
        SQLiteCheckpointStore(Path(folder) / "checkpoints.db") as store,
    ):
        importer = KinesisImporter(
            aws.client("kinesis"),
            settings,
            sink=events.extend,
            checkpoints=store,
            on_skip=lambda skip: skipped.append(skip.reason),
        )
        totals = importer.run(until_caught_up=True)
        saved = len(store.load(KINESIS_STREAM))
    print(
        f"   imported {totals.events} PostHog events from {totals.records} records in "
        f"{totals.polls} poll(s); {saved} shard checkpoints saved in SQLite"
    )
    for event in sorted(events, key=lambda e: (e.distinct_id, e.event)):
        print(
            f"   event {event.event!r:<17} distinct_id={event.distinct_id}  "
            f"plan={event.properties.get('plan')}"
        )
    for reason in sorted(skipped):
        print(f"   skipped: {reason}")
    return totals.events == 4 and len(skipped) == 2  # noqa: PLR2004 - the records above


def _outcome(result: ForwardResult) -> str:
    parts = [f"{result.sent} record"]
    if result.filtered_events:
        parts.append(f"{result.filtered_events} filtered")
    if result.dropped_events:
        parts.append(f"{result.dropped_events} malformed dropped")
    if result.skipped:
        parts.append("skipped: " + result.skipped[0].reason)
    return ", ".join(parts)
