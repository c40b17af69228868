"""The same records give the same events and uuids through all three engines.

KinesisImporter reads the stream itself (moto's server, over HTTP). The Lambda handler gets
the records as an event source mapping hands them over (whole, aggregates included); the KCL
processor gets them as the MultiLangDaemon does (KPL user records split, by aws-kinesis-agg's
de-aggregator playing the KCL's part, arrival times in milliseconds). PostHog drops the
duplicates only if all three agree, uuid for uuid — so a user can move between them, or run
two during a migration.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import Any

import pytest
from aws_kinesis_agg.aggregator import RecordAggregator
from aws_kinesis_agg.deaggregator import deaggregate_records

from streambridge import (
    ImporterSettings,
    KclRecordProcessor,
    KinesisImporter,
    PostHogEvent,
    SkippedRecord,
    make_handler,
)
from streambridge.testing import LocalAWS
from tests.importer.test_kcl import Checkpointer

pytestmark = pytest.mark.integration

SETTINGS = ImporterSettings(
    stream_name="clicks",
    event_key="properties.eventName",
    additional_property_mappings="properties.userId:distinct_id,properties.plan:plan",
    start_position="TRIM_HORIZON",
)


def doc(n: int, **extra: Any) -> dict[str, Any]:
    """A PostHog-app-style document."""
    properties = {"eventName": f"e{n % 3}", "userId": f"u{n}", "plan": "pro", **extra}
    return {"properties": properties}


def data_of(*documents: dict[str, Any]) -> bytes:
    """One record's data: the documents as NDJSON."""
    return b"\n".join(json.dumps(d).encode() for d in documents)


def aggregate(*payloads: bytes) -> bytes:
    """One KPL-aggregated record (aws-kinesis-agg, a real producer library)."""
    aggregator = RecordAggregator()
    for payload in payloads:
        aggregator.add_user_record("k", payload)
    _, _, packed = aggregator.clear_and_get().get_contents()
    return bytes(packed)


def seen(events: Sequence[PostHogEvent]) -> list[tuple[Any, ...]]:
    """What PostHog would receive, comparably."""
    return [
        (e.uuid, e.event, e.distinct_id, dict(e.properties), e.timestamp.isoformat())
        for e in events
    ]


def test_importer_lambda_and_kcl_give_the_same_events_and_uuids(
    aws: LocalAWS, kclpy: dict[str, str]
) -> None:
    """Plain, NDJSON, KPL-aggregated and poison records: identical events, identical skips."""
    from amazon_kclpy import dispatch  # noqa: PLC0415 - fetched by the kclpy fixture

    aws.create_stream("clicks")
    kinesis = aws.client("kinesis")
    payloads = [
        data_of(doc(0)),
        data_of(doc(1), doc(2)),
        aggregate(data_of(doc(3)), b"not json", data_of(doc(4), doc(5))),
        b"\xff\xfe poison",
        data_of(doc(6, plan=None)),
    ]
    for payload in payloads:
        kinesis.put_record(StreamName="clicks", Data=payload, PartitionKey="k")

    # 1. KinesisImporter, reading the stream itself.
    by_importer: list[PostHogEvent] = []
    importer_skips: list[SkippedRecord] = []
    importer = KinesisImporter(
        kinesis, SETTINGS, sink=by_importer.extend, on_skip=importer_skips.append
    )
    importer.run(until_caught_up=True)

    shard = kinesis.list_shards(StreamName="clicks")["Shards"][0]["ShardId"]
    iterator = kinesis.get_shard_iterator(
        StreamName="clicks", ShardId=shard, ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    raw = kinesis.get_records(ShardIterator=iterator)["Records"]
    assert len(raw) == len(payloads)
    arn = kinesis.describe_stream_summary(StreamName="clicks")["StreamDescriptionSummary"][
        "StreamARN"
    ]

    # 2. The Lambda handler, given the records as an event source mapping gives them.
    lambda_records = [
        {
            "kinesis": {
                "kinesisSchemaVersion": "1.0",
                "partitionKey": r["PartitionKey"],
                "sequenceNumber": r["SequenceNumber"],
                "data": base64.b64encode(r["Data"]).decode(),
                "approximateArrivalTimestamp": r["ApproximateArrivalTimestamp"].timestamp(),
            },
            "eventSource": "aws:kinesis",
            "eventID": f"{shard}:{r['SequenceNumber']}",
            "eventSourceARN": arn,
        }
        for r in raw
    ]
    by_lambda: list[PostHogEvent] = []
    lambda_skips: list[SkippedRecord] = []
    other_stream = ImporterSettings(
        stream_name="ignored",
        event_key=SETTINGS.event_key,
        additional_property_mappings=SETTINGS.additional_property_mappings,
    )
    handler = make_handler(other_stream, by_lambda.extend, on_skip=lambda_skips.append)
    assert handler({"Records": lambda_records}, None) == {"batchItemFailures": []}

    # 3. The KCL processor, given the user records the KCL splits aggregates into.
    kcl_records = []
    for user in deaggregate_records(lambda_records):
        body = user["kinesis"]
        arrival = round(body["approximateArrivalTimestamp"] * 1000)  # the KCL sends milliseconds
        kcl_records.append(
            {
                "action": "record",
                "data": body["data"].decode() if isinstance(body["data"], bytes) else body["data"],
                "partitionKey": body["partitionKey"],
                "sequenceNumber": body["sequenceNumber"],
                "subSequenceNumber": body.get("subSequenceNumber", 0),
                "approximateArrivalTimestamp": arrival,
            }
        )
    message = {"action": "processRecords", "records": kcl_records, "millisBehindLatest": 0}
    by_kcl: list[PostHogEvent] = []
    kcl_skips: list[SkippedRecord] = []
    processor = KclRecordProcessor(SETTINGS, by_kcl.extend, on_skip=kcl_skips.append)
    start = {"action": "initialize", "shardId": shard, "sequenceNumber": "TRIM_HORIZON"}
    start["subSequenceNumber"] = 0
    processor.initialize(json.loads(json.dumps(start), object_hook=dispatch.message_decode))
    decoded = json.loads(json.dumps(message), object_hook=dispatch.message_decode)
    checkpointer = Checkpointer()
    decoded.dispatch(checkpointer, processor)

    assert len(by_importer) == 7  # 1 + 2 + (1 + 2) + 1; "not json" and the poison skipped
    assert seen(by_lambda) == seen(by_importer)
    assert seen(by_kcl) == seen(by_importer)
    skips = [(s.sequence_number, s.reason) for s in importer_skips]
    assert len(skips) == 2
    assert [(s.sequence_number, s.reason) for s in lambda_skips] == skips
    assert [(s.sequence_number, s.reason) for s in kcl_skips] == skips
    assert checkpointer.calls == [(raw[-1]["SequenceNumber"], 0)]
