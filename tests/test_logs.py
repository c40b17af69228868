"""Issue 22, part 2: warnings carry their fields (logging's ``extra``); ``--log-format json``.

A log search (CloudWatch Logs Insights…) filters on stream, shard, sequence number, batch
index and error code: each warning below must carry them as attributes of its record, and the
command line must write every stderr line as one JSON object holding them.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

import pytest

from streambridge import (
    FirehoseForwarder,
    ForwarderSettings,
    ImporterSettings,
    KinesisImporter,
    PostHogEvent,
    RetryPolicy,
)
from streambridge._logging import FIELDS, JsonFormatter
from streambridge.testing import FakeClock, FaultInjector, LocalAWS, PartialFailure
from streambridge.testing.faults import ResponseFault


def records_of(caplog: pytest.LogCaptureFixture, level: int = logging.WARNING) -> list[Any]:
    """The streambridge records at ``level`` or above."""
    return [r for r in caplog.records if r.name.startswith("streambridge") and r.levelno >= level]


def test_the_json_formatter_writes_each_extra_field_as_a_key() -> None:
    """Time in UTC, level, logger, message, every extra field; what JSON cannot hold as text."""
    record = logging.LogRecord(
        "streambridge.importer", logging.WARNING, "f", 1, "shard %s", ("s-1",), None
    )
    record.__dict__.update(stream="clicks", shard="s-1", sequence_number="49", moment=object())
    line = JsonFormatter().format(record)
    assert "\n" not in line
    document = json.loads(line)
    assert ("WARNING", "streambridge.importer", "shard s-1") == (
        document["level"],
        document["logger"],
        document["message"],
    )
    assert ("clicks", "s-1", "49") == (
        document["stream"],
        document["shard"],
        document["sequence_number"],
    )
    assert document["time"].endswith("Z")
    assert document["moment"].startswith("<object object")
    try:
        int("boom")
    except ValueError:
        record.exc_info = sys.exc_info()
    assert "ValueError: invalid literal" in json.loads(JsonFormatter().format(record))["exception"]


@pytest.mark.integration
def test_the_importers_warnings_carry_stream_shard_and_code(
    aws: LocalAWS, caplog: pytest.LogCaptureFixture
) -> None:
    """A malformed answer, a sink that fails once, a record skipped: each line's fields."""
    aws.create_stream("clicks", shards=1)
    aws.put_records("clicks", [{"name": "a"}, {"nameless": 1}])
    client = aws.client("kinesis")
    failures = [RuntimeError("PostHog is down")]

    def sink(events: Sequence[PostHogEvent]) -> None:
        if failures:
            raise failures.pop()

    settings = ImporterSettings(
        stream_name="clicks", event_key="name", start_position="TRIM_HORIZON"
    )
    clock = FakeClock()
    importer = KinesisImporter(client, settings, sink=sink, sleep=clock.sleep, clock=clock)
    with FaultInjector(client) as faults, caplog.at_level(logging.WARNING, "streambridge"):
        faults.add("GetRecords", ResponseFault(200, {"Records": "not a list"}))
        totals = importer.run(until_caught_up=True, max_polls=50)
    assert 1 == totals.events
    lines = records_of(caplog)
    malformed = next(r for r in lines if "asking again from the checkpoint" in r.getMessage())
    assert ("clicks", "shardId-000000000000", "MalformedAnswer") == (
        malformed.stream,
        malformed.shard,
        malformed.error_code,
    )
    down = next(r for r in lines if "sink did not take" in r.getMessage())
    assert ("clicks", "shardId-000000000000", 1, "RuntimeError") == (
        down.stream,
        down.shard,
        down.events,
        down.error_code,
    )
    skipped = next(r for r in lines if "skipped" in r.getMessage())
    assert "clicks" == skipped.stream
    for record in lines:  # every field name used is one of the documented ones
        extra = set(record.__dict__) - set(logging.makeLogRecord({}).__dict__) - {"message"}
        assert extra <= set(FIELDS), extra


@pytest.mark.integration
def test_the_forwarders_warnings_carry_the_delivery_stream_and_codes(
    aws: LocalAWS, caplog: pytest.LogCaptureFixture
) -> None:
    """Retries run out on throttled records; a batch is rejected: their fields."""
    aws.create_delivery_stream("events")
    client = aws.client("firehose")
    settings = ForwarderSettings(delivery_stream_name="events", send_as_batch=False)
    forwarder = FirehoseForwarder(
        client, settings, retry=RetryPolicy(max_attempts=2), sleep=lambda _: None
    )
    batches: list[Any] = [{"events": [{"event_type": "custom_event", "data": {"n": 1}}]}, 7]
    with FaultInjector(client) as faults, caplog.at_level(logging.WARNING, "streambridge"):
        faults.always("PutRecordBatch", PartialFailure(fraction=1.0))
        result = forwarder.forward_many(batches)
    assert 1 == len(result.failed)
    lines = records_of(caplog)
    exhausted = next(r for r in lines if getattr(r, "records", None) == 1)
    assert ("events", "ServiceUnavailableException") == (
        exhausted.delivery_stream,
        exhausted.error_code,
    )
    for record in lines:
        extra = set(record.__dict__) - set(logging.makeLogRecord({}).__dict__) - {"message"}
        assert extra <= set(FIELDS), extra


@pytest.mark.integration
def test_log_format_json_makes_every_stderr_line_a_json_object(aws: LocalAWS) -> None:
    """An import with a skipped record: each line JSON; the summary has its counts as keys."""
    aws.create_stream("clicks", shards=1)
    aws.put_records("clicks", [{"name": "a"}, {"nameless": 1}])
    command = [sys.executable, "-m", "streambridge", "import", "--stream", "clicks"]
    command += ["--event-key", "name", "--start", "TRIM_HORIZON", "--until-caught-up"]
    command += ["--output", os.devnull, "--log-format", "json"]
    env = {**os.environ, **aws.environment()}
    done = subprocess.run(  # noqa: S603 - our own command, loopback only
        command, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert 0 == done.returncode, done.stderr
    lines = [json.loads(line) for line in done.stderr.splitlines()]
    summary = next(line for line in lines if line["message"].startswith("imported"))
    assert (1, 2, 1, "clicks", "caught_up") == (
        summary["events"],
        summary["records"],
        summary["skipped"],
        summary["stream"],
        summary["stopped_because"],
    )
    warning = next(line for line in lines if line["level"] == "WARNING")
    assert "clicks" == warning["stream"]
    missing = subprocess.run(  # noqa: S603
        [*command[:5], "nowhere", *command[6:]],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert 3 == missing.returncode
    (error,) = [json.loads(line) for line in missing.stderr.splitlines()]
    assert ("ERROR", 3) == (error["level"], error["exit_code"])
    assert "nowhere" in error["message"]
