"""What lands in S3 is queryable: newline-delimited records by default, mParticle's on request."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from streambridge import FirehoseForwarder, ForwarderSettings
from streambridge.forwarder.filtering import filter_batch
from streambridge.testing import LocalAWS
from tests.cli.test_cli import run

pytestmark = pytest.mark.integration

STREAM = "events"
SETTINGS = ForwarderSettings(delivery_stream_name=STREAM)


def test_records_are_json_lines_by_default(aws: LocalAWS, samples: list[dict[str, Any]]) -> None:
    """Each record ends with a newline: an S3 object is JSON lines, one row per record."""
    aws.create_delivery_stream(STREAM)
    FirehoseForwarder(aws.client("firehose"), SETTINGS).forward_many(samples)
    body = b"".join(aws.delivered_objects(STREAM))
    assert body.endswith(b"\n")
    rows = [json.loads(line) for line in body.splitlines()]
    assert len(samples) == len(rows)  # one row per batch: what Athena and Glue count


def test_an_empty_delimiter_keeps_mparticle_framing(
    aws: LocalAWS, samples: list[dict[str, Any]]
) -> None:
    """record_delimiter=b"": records concatenated with nothing between them, as mParticle does."""
    aws.create_delivery_stream(STREAM)
    forwarder = FirehoseForwarder(aws.client("firehose"), SETTINGS, record_delimiter=b"")
    forwarder.forward_many(samples)
    body = b"".join(aws.delivered_objects(STREAM))
    assert b"\n" not in body
    expected = b"".join(
        json.dumps(filter_batch(b, SETTINGS), separators=(",", ":"), ensure_ascii=False).encode()
        for b in samples
    )
    assert len(expected) == len(body)


def test_check_says_when_the_delivery_stream_appends_a_delimiter(
    aws: LocalAWS, caplog: pytest.LogCaptureFixture
) -> None:
    """An AppendDelimiterToRecord processor and our newline would double: check() warns."""
    aws.create_delivery_stream(STREAM, append_delimiter=True)
    aws.create_delivery_stream("plain")
    client = aws.client("firehose")
    with caplog.at_level(logging.WARNING):
        info = FirehoseForwarder(client, SETTINGS).check()
    assert info.appends_delimiter
    assert any("AppendDelimiterToRecord" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        FirehoseForwarder(client, SETTINGS, record_delimiter=b"").check()
        plain = FirehoseForwarder(client, ForwarderSettings(delivery_stream_name="plain")).check()
    assert not plain.appends_delimiter
    assert [] == caplog.records


def test_the_command_line_too(
    aws: LocalAWS,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Any,
    ios: dict[str, Any],
) -> None:
    """`forward` writes JSON lines unless --no-newline; `check` reports the stream's delimiter."""
    for name, value in aws.environment().items():
        monkeypatch.setenv(name, value)
    aws.create_delivery_stream(STREAM, append_delimiter=True)
    aws.create_delivery_stream("plain")
    batches = tmp_path / "in.jsonl"
    batches.write_text(json.dumps(ios) + "\n", encoding="utf-8")
    assert 0 == run(capsys, "forward", "--stream", "plain", str(batches))[0]
    assert b"".join(aws.delivered_objects("plain")).endswith(b"}\n")
    assert 0 == run(capsys, "forward", "--stream", STREAM, "--no-newline", str(batches))[0]
    assert b"".join(aws.delivered_objects(STREAM)).endswith(b"}")
    code, out, _ = run(capsys, "check", "--firehose-stream", STREAM)
    assert 0 == code
    assert "appends a delimiter to each record (AppendDelimiterToRecord)" in out
    code, out, _ = run(capsys, "check", "--firehose-stream", "plain")
    assert "appends no delimiter" in out
