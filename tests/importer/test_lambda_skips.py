"""Issue 18, part 2: in Lambda a skipped record is findable, and remote dead letters.

Each skipped or refused record gets one structured log line (stream, shard, sequence number,
sub-sequence, reason); with a dead-letter target (an S3 prefix, an SQS queue: moto's, over
HTTP) it goes there with its data, and when the target cannot take it the record is reported
in ``batchItemFailures`` — retried, never dropped.
"""

from __future__ import annotations

import base64
import json
import logging
from typing import Any

import pytest

from streambridge import S3DeadLetters, SQSDeadLetters, make_handler
from streambridge.errors import ConfigurationError, DeadLetterError
from streambridge.importer import aws_lambda
from streambridge.importer.aws_lambda import handler_from_environment
from streambridge.importer.results import SkippedRecord
from streambridge.testing import LocalAWS
from tests.cli.test_cli import _env, run  # noqa: F401 - the env fixture
from tests.importer.test_lambda import SETTINGS, SHARD, Sink, doc, failures, record

POISON = b"\xff not json"


def mixed_event() -> dict[str, Any]:
    """40 records; every fourth (10 in all) is poison."""
    return {"Records": [record(str(1000 + n), POISON if n % 4 == 3 else doc(n)) for n in range(40)]}


POISONED = [str(1000 + n) for n in range(40) if n % 4 == 3]


def logged_skips(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    """The structured skip lines the handler logged."""
    lines = []
    for entry in caplog.records:
        text = entry.getMessage()
        if text.startswith("{"):
            lines.append(json.loads(text))
    return lines


def test_every_skipped_record_is_logged_with_what_finds_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """10 poison records in 40: 10 structured lines, each naming stream, shard and sequence."""
    caplog.set_level(logging.INFO, logger="streambridge")
    answer = make_handler(SETTINGS, Sink())(mixed_event())
    assert failures(answer) == []
    skips = logged_skips(caplog)
    assert [s["sequence_number"] for s in skips] == POISONED
    assert {(s["stream"], s["shard_id"], s["message"]) for s in skips} == {
        ("clicks", SHARD, "record skipped")
    }
    assert {s["reason"] for s in skips} == {"not valid UTF-8"}
    assert not any("skipped skipped" in r.getMessage() for r in caplog.records)


def test_past_a_hundred_the_rest_is_one_summary_line(caplog: pytest.LogCaptureFixture) -> None:
    """150 poison records: 100 lines one by one, then one line for the other 50."""
    caplog.set_level(logging.INFO, logger="streambridge")
    event = {"Records": [record(str(n), POISON) for n in range(150)]}
    make_handler(SETTINGS, Sink())(event)
    assert len(logged_skips(caplog)) == aws_lambda.LOGGED_SKIPS == 100
    assert any("50 more skipped record(s)" in r.getMessage() for r in caplog.records)


def test_refused_events_are_logged_by_sequence_too(caplog: pytest.LogCaptureFixture) -> None:
    """Events PostHog refuses (400/413) are skipped records, logged one by one."""
    caplog.set_level(logging.INFO, logger="streambridge")
    sink = Sink()
    sink.refuse = {2, 5}
    make_handler(SETTINGS, sink)({"Records": [record(str(n), doc(n)) for n in range(8)]})
    skips = logged_skips(caplog)
    assert [s["sequence_number"] for s in skips] == ["2", "5"]
    assert all("refused by the sink" in s["reason"] for s in skips)


class BrokenTarget(S3DeadLetters):
    """An S3 target whose bucket is missing."""


@pytest.mark.integration
def test_skipped_records_go_to_sqs_with_their_data(aws: LocalAWS) -> None:
    """The poison records land in the queue, one message each, data and sequence included."""
    sqs = aws.client("sqs")
    url = sqs.create_queue(QueueName="dead")["QueueUrl"]
    handler = make_handler(SETTINGS, Sink(), on_skip=SQSDeadLetters(sqs, url))
    assert failures(handler(mixed_event())) == []
    bodies: list[dict[str, Any]] = []
    while True:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if not got:
            break
        bodies += [json.loads(m["Body"]) for m in got]
    assert sorted(b["sequence_number"] for b in bodies) == POISONED
    assert {b["data_base64"] for b in bodies} == {base64.b64encode(POISON).decode()}
    assert {(b["stream"], b["shard_id"], b["kind"]) for b in bodies} == {
        ("clicks", SHARD, "skipped")
    }


@pytest.mark.integration
def test_skipped_records_go_to_s3_in_one_object(aws: LocalAWS) -> None:
    """One invocation's letters are one JSON-lines object under the prefix."""
    s3 = aws.client("s3")
    s3.create_bucket(Bucket="dead")
    handler = make_handler(SETTINGS, Sink(), on_skip=S3DeadLetters(s3, "s3://dead/lambda"))
    assert failures(handler(mixed_event())) == []
    (key,) = [o["Key"] for o in s3.list_objects_v2(Bucket="dead")["Contents"]]
    assert key.startswith("lambda/")
    assert key.endswith(".jsonl")
    lines = s3.get_object(Bucket="dead", Key=key)["Body"].read().splitlines()
    assert [json.loads(line)["sequence_number"] for line in lines] == POISONED


@pytest.mark.integration
def test_a_target_that_cannot_be_written_reports_the_records_for_a_retry(
    aws: LocalAWS, caplog: pytest.LogCaptureFixture
) -> None:
    """No such bucket: the 10 poison records are in batchItemFailures, not dropped."""
    target = S3DeadLetters(aws.client("s3"), "s3://no-such-bucket/x/")
    answer = make_handler(SETTINGS, Sink(), on_skip=target)(mixed_event())
    assert failures(answer) == POISONED
    assert target.unwritten == 10
    assert "NoSuchBucket" in (target.last_error or "")


@pytest.mark.integration
def test_sqs_refuses_a_letter_over_its_limit(aws: LocalAWS) -> None:
    """A letter over SQS's message size is not written (use S3), and says so."""
    sqs = aws.client("sqs")
    url = sqs.create_queue(QueueName="small")["QueueUrl"]
    big = SkippedRecord(SHARD, "1", 0, "not JSON", b"\xff" * 300_000)
    with pytest.raises(DeadLetterError, match="use an S3 prefix"):
        SQSDeadLetters(sqs, url).write([big])


def test_the_zero_code_handler_takes_its_dead_letters_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """STREAMBRIDGE_DEAD_LETTER names an S3 prefix or a queue; a local path is refused."""
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    base = {"STREAMBRIDGE_EVENT_KEY": "name", "POSTHOG_API_KEY": "phc_k"}
    handler = handler_from_environment({**base, "STREAMBRIDGE_DEAD_LETTER": "s3://b/p"})
    assert isinstance(handler.on_skip, S3DeadLetters)
    assert handler.on_skip.target == "s3://b/p/"
    url = "https://sqs.us-east-1.amazonaws.com/123456789012/dead"
    handler = handler_from_environment({**base, "STREAMBRIDGE_DEAD_LETTER": url})
    assert isinstance(handler.on_skip, SQSDeadLetters)
    with pytest.raises(ConfigurationError, match="do not outlive it"):
        handler_from_environment({**base, "STREAMBRIDGE_DEAD_LETTER": "/tmp/dead.jsonl"})  # noqa: S108


# --------------------------------------------------------------------------- the commands


@pytest.mark.integration
def test_import_and_forward_write_remote_dead_letters(
    aws: LocalAWS, env: list[str], tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """--dead-letter s3://… for import, an SQS URL for forward (the records it could not send)."""
    s3 = aws.client("s3")
    s3.create_bucket(Bucket="dead")
    aws.create_stream("clicks", shards=1)
    aws.put_records("clicks", [b"not json", {"name": "ok"}])
    code, _, err = run(
        capsys,
        "import", "--stream", "clicks", "--event-key", "name", "--start", "TRIM_HORIZON",
        "--until-caught-up", "--output", str(tmp_path / "out.jsonl"),
        "--dead-letter", "s3://dead/import/", *env,
    )  # fmt: skip
    assert code == 0, err
    (key,) = [o["Key"] for o in s3.list_objects_v2(Bucket="dead")["Contents"]]
    (letter,) = s3.get_object(Bucket="dead", Key=key)["Body"].read().splitlines()
    assert json.loads(letter)["data"] == "not json"

    sqs = aws.client("sqs")
    url = sqs.create_queue(QueueName="forward-dead")["QueueUrl"]
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps({"events": [{"event_type": "custom_event", "data": {}}]}) + "\n")
    code, _, err = run(
        capsys, "forward", "--stream", "missing", "--dead-letter", url, *env, str(source)
    )
    assert code == 3
    assert f"written to {url!r}" in err
    (message,) = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert json.loads(message["Body"])["kind"] == "failed"
