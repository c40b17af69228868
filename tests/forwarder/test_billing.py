"""Issue 23, part 1: the meter. What a run sends, and what Firehose bills for it.

Firehose bills ingestion per record rounded up to the next 5 KB. Every result counts the bytes
of the records delivered and those billed; checked against what moto's Firehose wrote to S3
(one record a line, with newline framing), through partial failures and retries.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streambridge import FirehoseForwarder, ForwarderSettings, ForwardResult
from streambridge.cli import main
from streambridge.forwarder.delivery import BILLING_UNIT, billed
from streambridge.testing import FaultInjector, LocalAWS, PartialFailure


@given(st.integers(min_value=0, max_value=10**7))
def test_a_record_is_billed_rounded_up_to_the_next_5_kb(size: int) -> None:
    """The least multiple of 5,120 bytes that holds it (a record is at least one byte)."""
    bill = billed(size)
    assert bill % BILLING_UNIT == 0
    assert bill >= size
    assert bill - size < BILLING_UNIT
    assert billed(1) == billed(5120) == 5120
    assert billed(5121) == 10240


def test_results_add_their_bytes_and_say_the_ratio() -> None:
    """``+`` keeps the meter; nothing sent is a ratio of 1."""
    one = ForwardResult(sent=2, sent_bytes=1000, billed_bytes=10240)
    both = one + ForwardResult(sent=1, sent_bytes=5120, billed_bytes=5120)
    assert (6120, 15360) == (both.sent_bytes, both.billed_bytes)
    assert 10.24 == one.billing_ratio
    assert 1.0 == ForwardResult().billing_ratio


@pytest.mark.integration
def test_the_meter_counts_what_s3_got_through_partial_failures(aws: LocalAWS, ios: Any) -> None:
    """One record per event, 30 % of entries refused at each try: the bytes S3 holds, billed."""
    aws.create_delivery_stream("events")
    client = aws.client("firehose")
    settings = ForwarderSettings(delivery_stream_name="events", send_as_batch=False)
    forwarder = FirehoseForwarder(client, settings, max_batch_records=7, sleep=lambda _: None)
    with FaultInjector(client) as faults:
        faults.always("PutRecordBatch", PartialFailure(fraction=0.3, seed=2))
        result = forwarder.forward_many([ios] * 5)
    assert result.ok
    assert result.retries > 0
    records = [line for obj in aws.delivered_objects("events") for line in obj.splitlines(True)]
    assert len(records) == result.sent
    assert sum(map(len, records)) == result.sent_bytes
    assert sum(billed(len(r)) for r in records) == result.billed_bytes
    assert result.billing_ratio > 1
    snapshot = forwarder.metrics.snapshot()
    assert result.sent_bytes == snapshot.counter("bytes_sent", "events")
    assert result.billed_bytes == snapshot.counter("bytes_billed", "events")


@pytest.mark.integration
def test_the_forward_summary_says_what_is_billed(
    aws: LocalAWS, tmp_path: Any, capsys: pytest.CaptureFixture[str], monkeypatch: Any
) -> None:
    """The command's summary: MB sent, MB billed, the ratio."""
    aws.create_delivery_stream("events")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    batches = tmp_path / "b.jsonl"
    batches.write_text('{"events": [{"event_type": "custom_event", "data": {"n": 1}}]}\n')
    argv = ["forward", "--stream", "events", str(batches), "--endpoint-url", aws.endpoint_url]
    assert 0 == main([*argv, "--region", aws.region])
    out = capsys.readouterr().out
    assert "billed as 0.01 MB (each record rounded up to 5 KB:" in out


def _table(out: str) -> dict[str, tuple[int, float, float]]:
    """The dry run's rows: framing -> (records, MB, billed MB)."""
    rows = {}
    for line in out.splitlines()[2:]:
        name, numbers = line[:48].strip(), line[48:].split()
        rows[name] = (int(numbers[0].replace(",", "")), float(numbers[1]), float(numbers[2]))
    return rows


@pytest.mark.integration
def test_a_dry_run_bills_as_the_real_forward_does(
    aws: LocalAWS, tmp_path: Any, capsys: pytest.CaptureFixture[str], monkeypatch: Any
) -> None:
    """``--dry-run`` without AWS, then the real thing one record per event: the same meter."""
    batches = tmp_path / "batches.jsonl"
    assert 0 == main(["samples", "--good-only", "--output", str(batches)])
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    capsys.readouterr()
    assert 0 == main(["forward", "--stream", "events", "--dry-run", str(batches)])
    rows = _table(capsys.readouterr().out)
    per_event = rows["one record per event"]
    packed = rows["one record per event, packed up to 1,000 KiB"]
    assert (1, per_event[1]) == (packed[0], packed[1])  # the same bytes in one record
    assert packed[2] < per_event[2]
    assert 2 == main(["forward", "--stream", "events", "--dry-run", "--checkpoints", "x.db", "-"])
    aws.create_delivery_stream("events")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    settings = tmp_path / "mparticle.json"
    settings.write_text('{"Delivery Stream Name": "events", "Send as Batch": false}')
    argv = ["forward", "--settings", str(settings), str(batches), "--region", aws.region]
    assert 0 == main([*argv, "--endpoint-url", aws.endpoint_url])
    summary = capsys.readouterr().out
    assert summary.startswith(f"sent {per_event[0]} record(s)")
    assert f", {per_event[1]:.2f} MB, billed as {per_event[2]:.2f} MB" in summary
