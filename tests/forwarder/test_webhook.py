"""WebhookReceiver: one mParticle Webhook request -> one answer, on the local AWS (issue 20)."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path
from typing import Any

import pytest

from streambridge import FirehoseForwarder, ForwarderSettings, RetryPolicy
from streambridge.deadletter import DeadLetterFile, read_dead_letters
from streambridge.forwarder.webhook import Answer, WebhookReceiver
from streambridge.testing import (
    FakeClock,
    FaultInjector,
    LocalAWS,
    PartialFailure,
    access_denied,
    throttling,
)

SECRET = "Basic c2VjcmV0OnBhc3N3b3Jk"  # noqa: S105 - a test value
STREAM = "hook"


def receiver(
    aws: LocalAWS,
    *,
    client: Any = None,
    dead_letter: Any = None,
    send_as_batch: bool = True,
    settings: ForwarderSettings | None = None,
    max_record_bytes: int = 1_024_000,
    **kwargs: Any,
) -> WebhookReceiver:
    """A receiver forwarding to STREAM with a short, fake-clock retry budget."""
    clock = FakeClock()
    settings = settings or ForwarderSettings(
        delivery_stream_name=STREAM, send_as_batch=send_as_batch
    )
    firehose = client or aws.client("firehose")
    return WebhookReceiver(
        lambda: FirehoseForwarder(
            firehose,
            settings,
            retry=RetryPolicy(max_attempts=3, max_elapsed=5),
            sleep=clock.sleep,
            clock=clock,
            max_record_bytes=max_record_bytes,
        ),
        authorization=SECRET,
        dead_letter=dead_letter,
        **kwargs,
    )


def post(hook: WebhookReceiver, body: bytes, **headers: str) -> Answer:
    """POST ``body`` with the right Authorization unless ``headers`` say otherwise."""
    given = {"authorization": SECRET, **{k.replace("_", "-"): v for k, v in headers.items()}}
    return hook.answer("POST", "/mparticle", {k: v for k, v in given.items() if v}, body)


def test_a_batch_is_answered_200_once_firehose_has_its_records(
    aws: LocalAWS, ios: dict[str, Any]
) -> None:
    """The sample batch, one record per event: 200 with the counts; every event in S3."""
    aws.create_delivery_stream(STREAM)
    answer = post(receiver(aws, send_as_batch=False), json.dumps(ios).encode())
    assert 200 == answer.status
    assert answer.body["sent"] == len(aws.delivered(STREAM)) > 0
    assert "application/json" == dict(answer.all_headers(3))["content-type"]


def test_a_gzip_body_is_taken(aws: LocalAWS, web: dict[str, Any]) -> None:
    """Content-Encoding: gzip is decompressed; the batch is delivered whole."""
    aws.create_delivery_stream(STREAM)
    body = gzip.compress(json.dumps(web).encode())
    answer = post(receiver(aws), body, content_encoding="gzip")
    assert (200, 1) == (answer.status, answer.body["sent"])
    assert [web["batch_id"]] == [b.get("batch_id") for b in aws.delivered(STREAM)]


@pytest.mark.parametrize(
    "given",
    [
        None,  # missing
        "",
        "Basic wrong",
        SECRET.lower(),  # differently cased
        SECRET.upper(),
        SECRET[:-1],  # a prefix of the right one
        SECRET + "x",
        " " + SECRET,
        "Bearer " + SECRET,
        "Basic c2VjcmV0OnBhc3N3b3Jk\u00e9",  # not latin-1 on the wire: still just wrong
    ],
)
def test_a_wrong_authorization_is_401_and_nothing_is_forwarded(
    aws: LocalAWS, ios: dict[str, Any], given: str | None
) -> None:
    """Anything but the exact value: 401, no call to Firehose, no secret in the answer."""
    aws.create_delivery_stream(STREAM)
    client = aws.client("firehose")
    with FaultInjector(client, keep_requests=True) as faults:
        hook = receiver(aws, client=client)
        headers = {} if given is None else {"authorization": given}
        answer = hook.answer("POST", "/", headers, json.dumps(ios).encode())
        assert [] == faults.sent_records()
    assert 401 == answer.status
    assert "c2VjcmV0" not in answer.encoded().decode()
    assert [] == aws.delivered(STREAM)


def test_the_header_name_is_case_insensitive_as_http_says(aws: LocalAWS, ios: Any) -> None:
    """Servers hand over lower-case names: the receiver reads the lower-case name only."""
    aws.create_delivery_stream(STREAM)
    hook = receiver(aws)
    assert 401 == hook.answer("POST", "/", {"Authorization": SECRET}, b"{}").status
    assert (
        200 == hook.answer("POST", "/", {"authorization": SECRET}, json.dumps(ios).encode()).status
    )


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        (b"", 400, "not JSON"),
        (b"{not json", 400, "not JSON"),
        (b'{"events": [1, 2', 400, "not JSON"),  # truncated
        (b'{"events": "\xff\xfe"}', 400, "UTF-8"),
        (b"[" * 10_000 + b"]" * 10_000, 400, "nested too deeply|depth limit"),
        (b"[1, 2]", 400, "not an mParticle batch"),
        (b'"text"', 400, "not an mParticle batch"),
        (b'{"events": "not a list"}', 400, "events"),
        (b"NaN", 400, "not JSON"),
    ],
)
def test_a_body_that_is_not_a_batch_is_400_with_the_reason(
    aws: LocalAWS, body: bytes, status: int, reason: str
) -> None:
    """Each bad body gets its reason; nothing reaches Firehose."""
    aws.create_delivery_stream(STREAM)
    answer = post(receiver(aws), body)
    assert status == answer.status
    assert re.search(reason, answer.body["reason"])
    assert [] == aws.delivered(STREAM)


def test_bodies_past_the_limit_are_413_gzip_bombs_included(aws: LocalAWS) -> None:
    """Over the limit before or after gzip: 413; a cut or trailing gzip body: 400."""
    aws.create_delivery_stream(STREAM)
    hook = receiver(aws, max_body_bytes=10_000)
    assert 413 == post(hook, b" " * 10_001).status
    bomb = gzip.compress(b"{" + b" " * 50_000_000 + b"}")  # 50 MB of JSON in ~50 KB
    assert len(bomb) < 100_000
    assert 413 == post(receiver(aws, max_body_bytes=200_000), bomb, content_encoding="gzip").status
    good = gzip.compress(b'{"events": []}')
    assert 400 == post(hook, good[:-4], content_encoding="gzip").status
    assert 400 == post(hook, good + b"junk", content_encoding="gzip").status
    assert 400 == post(hook, b"plain", content_encoding="gzip").status
    assert 415 == post(hook, b"{}", content_encoding="br").status
    assert [] == aws.delivered(STREAM)


def test_methods_and_health(aws: LocalAWS) -> None:
    """GET /healthz is 200 without a header; other methods are 405 with Allow."""
    hook = receiver(aws)
    assert Answer(200, {"status": "ok"}) == hook.answer("GET", "/healthz", {}, b"")
    assert 200 == hook.answer("HEAD", "/healthz/", {}, b"").status
    for method in ("GET", "PUT", "DELETE", "PATCH"):
        answer = hook.answer(method, "/", {"authorization": SECRET}, b"{}")
        assert 405 == answer.status
        assert ("allow", "POST") in answer.headers


def test_throttling_past_the_budget_is_503_with_retry_after_and_kept(
    aws: LocalAWS, ios: dict[str, Any], tmp_path: Path
) -> None:
    """Firehose throttles every call: 503, Retry-After, the records in the dead letter."""
    aws.create_delivery_stream(STREAM)
    client = aws.client("firehose")
    with FaultInjector(client) as faults, DeadLetterFile(tmp_path / "dead.jsonl") as letters:
        faults.always("PutRecordBatch", throttling("ServiceUnavailableException"))
        answer = post(
            receiver(aws, client=client, dead_letter=letters, retry_after=7),
            json.dumps(ios).encode(),
        )
    assert 503 == answer.status
    assert ("retry-after", "7") in answer.headers
    assert (1, "written") == (answer.body["undelivered"], answer.body["dead_letter"])
    kept = list(read_dead_letters(tmp_path / "dead.jsonl"))
    assert [ios["batch_id"]] == [json.loads(k.data)["batch_id"] for k in kept]
    assert (tmp_path / "dead.jsonl").stat().st_mode & 0o777 == 0o600


def test_a_partial_failure_is_503_for_the_batch_and_a_retry_completes_it(
    aws: LocalAWS, ios: dict[str, Any]
) -> None:
    """Some events refused: not 2xx; mParticle's retry of the same batch then gets 200.

    Every event is in S3 at least once (the retry may duplicate the ones delivered first).
    """
    aws.create_delivery_stream(STREAM)
    client = aws.client("firehose")
    hook = receiver(aws, client=client, send_as_batch=False)
    body = json.dumps(ios).encode()
    with FaultInjector(client) as faults:
        faults.always("PutRecordBatch", PartialFailure(fraction=0.5, seed=2))
        first = post(hook, body)
    assert 503 == first.status
    assert first.body["undelivered"] > 0
    second = post(hook, body)
    assert 200 == second.status
    delivered = {json.dumps(e, sort_keys=True) for e in aws.delivered(STREAM)}
    assert second.body["sent"] == len(delivered)


def test_records_firehose_would_refuse_are_502_and_kept(
    aws: LocalAWS, ios: dict[str, Any], tmp_path: Path
) -> None:
    """Events too large for a record: not sent, kept in the dead letter; the rest delivered."""
    aws.create_delivery_stream(STREAM)
    settings = ForwarderSettings(delivery_stream_name=STREAM, send_as_batch=False)
    records = FirehoseForwarder(aws.client("firehose"), settings).prepare(ios)[0]
    limit = sorted(map(len, records))[len(records) // 2]  # about half the records do not fit
    with DeadLetterFile(tmp_path / "dead.jsonl") as letters:
        hook = receiver(aws, send_as_batch=False, max_record_bytes=limit, dead_letter=letters)
        answer = post(hook, json.dumps(ios).encode())
    kept = list(read_dead_letters(tmp_path / "dead.jsonl"))
    assert 502 == answer.status
    assert "RecordTooLarge" in answer.body["reason"]
    assert (len(kept), "written") == (answer.body["undelivered"], answer.body["dead_letter"])
    assert 0 < answer.body["sent"] == len(aws.delivered(STREAM))
    assert answer.body["sent"] + len(kept) == len(ios["events"])


def test_a_refusal_retrying_cannot_fix_is_502(aws: LocalAWS, ios: dict[str, Any]) -> None:
    """Access denied on both operations: 502, the reason, nothing lost silently."""
    aws.create_delivery_stream(STREAM)
    client = aws.client("firehose")
    with FaultInjector(client) as faults:
        faults.always("PutRecordBatch", access_denied())
        faults.always("PutRecord", access_denied())
        answer = post(receiver(aws, client=client), json.dumps(ios).encode())
    assert 502 == answer.status
    assert "AccessDenied" in answer.body["reason"]
    assert (1, "none configured") == (answer.body["undelivered"], answer.body["dead_letter"])


def test_a_batch_the_settings_filter_out_is_200(aws: LocalAWS, s2s: dict[str, Any]) -> None:
    """A batch the settings skip (Send Batches Without Events off) is answered 200."""
    aws.create_delivery_stream(STREAM)
    settings = ForwarderSettings(delivery_stream_name=STREAM, send_batches_without_events=False)
    answer = post(receiver(aws, settings=settings), json.dumps(s2s).encode())
    assert (200, 0, 1) == (answer.status, answer.body["sent"], answer.body["skipped"])
    assert [] == aws.delivered(STREAM)


def test_wait_for_complete_batch_is_refused(aws: LocalAWS) -> None:
    """Sessions held in memory cannot be answered only once delivered: refused, said why."""
    settings = ForwarderSettings(delivery_stream_name=STREAM, wait_for_complete_batch=True)
    client = aws.client("firehose")
    with pytest.raises(ValueError, match="Wait for Complete Batch"):
        WebhookReceiver(lambda: FirehoseForwarder(client, settings), authorization=SECRET)


def test_an_empty_expected_value_is_refused() -> None:
    """An empty Authorization value would let anyone in: refused at construction."""
    with pytest.raises(ValueError, match="empty"):
        WebhookReceiver(lambda: None, authorization=" ")  # type: ignore[arg-type,return-value]
