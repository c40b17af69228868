"""Dead-letter targets and the JSON-lines sink at their edges (issue 18).

A file that takes part of a write (a size limit: ``RLIMIT_FSIZE``, what a full disk does part
way), a closed file, S3 and SQS answers that cannot be believed, a pipe whose reader leaves or
never reads.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import threading
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from streambridge import DeadLetterFile, PostHogEvent, read_dead_letters
from streambridge.deadletter_remote import S3DeadLetters, SQSDeadLetters, remote_target
from streambridge.errors import (
    ConfigurationError,
    DeadLetterError,
    OutputClosedError,
    SinkError,
)
from streambridge.importer.results import SkippedRecord
from streambridge.importer.sinks import JsonLinesSink
from streambridge.testing import LocalAWS


def skipped(n: int, size: int = 10) -> SkippedRecord:
    """A skipped record of about ``size`` bytes of data."""
    return SkippedRecord("shardId-0", str(n), 0, "not JSON", b"x" * size)


def event(n: int) -> PostHogEvent:
    """One event."""
    return PostHogEvent(
        event="click",
        distinct_id=f"u{n}",
        properties={"n": n},
        timestamp=datetime(2026, 12, 7, tzinfo=timezone.utc),
        uuid=f"{n:032x}",
    )


@contextlib.contextmanager
def file_size_limit(limit: int) -> Iterator[None]:
    """Writes past ``limit`` bytes fail (EFBIG) — a part of a write is taken, as on a full disk."""
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)


def test_a_write_cut_part_way_is_taken_back(tmp_path: Path) -> None:
    """The file holds whole letters only: the cut one is removed, and counted unwritten."""
    path = tmp_path / "dead.jsonl"
    with DeadLetterFile(path) as letters:
        letters.write([skipped(1)])
        whole = path.stat().st_size
        with file_size_limit(whole + 100), pytest.raises(DeadLetterError, match="2 dead"):
            letters.write([skipped(2, 500), skipped(3, 500)])
        assert path.stat().st_size == whole
        assert (letters.written, letters.unwritten) == (1, 2)
        letters.write([skipped(4)])
    assert [d.data for d in read_dead_letters(path)] == [b"x" * 10, b"x" * 10]


def test_a_closed_file_takes_no_letter(tmp_path: Path) -> None:
    """Writing after close is a DeadLetterError, not a crash; close twice is nothing."""
    letters = DeadLetterFile(tmp_path / "dead.jsonl")
    letters.close()
    letters.close()
    with pytest.raises(DeadLetterError, match="the file is closed"):
        letters(skipped(1))


def test_json_lines_into_a_file_that_takes_part_of_a_write(tmp_path: Path) -> None:
    """A cut write into a file raises, and the cut lines are taken back: no torn line."""
    path = tmp_path / "events.jsonl"
    with path.open("a", encoding="utf-8") as stream:
        sink = JsonLinesSink(stream)
        sink([event(0)])
        whole = path.stat().st_size
        with file_size_limit(whole + 100), pytest.raises(OSError, match="File too large"):
            sink([event(n) for n in range(1, 50)])
        assert path.stat().st_size == whole
        sink([event(99)])
    lines = path.read_text().splitlines()
    assert len(lines) == 2


def test_json_lines_into_a_pipe_whose_reader_left_unread() -> None:
    """The reader leaves with a line unread: OutputClosedError, the call is not delivered."""
    read_end, write_end = os.pipe()
    with os.fdopen(write_end, "w") as stream:
        threading.Timer(0.2, os.close, (read_end,)).start()  # it never reads, then leaves
        with pytest.raises(OutputClosedError, match="after 0 of"):
            JsonLinesSink(stream)([event(1), event(2)])


def test_json_lines_into_a_closed_pipe() -> None:
    """No reader at all: the first write is refused (EPIPE) and said so."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    with os.fdopen(write_end, "w") as stream, pytest.raises(OutputClosedError):
        JsonLinesSink(stream)([event(1)])


def test_json_lines_gives_up_a_reader_that_never_reads_when_abandoned() -> None:
    """SIGTERM's abandon(): the wait for a reader ends with a SinkError (read again later)."""
    read_end, write_end = os.pipe()
    try:
        with os.fdopen(write_end, "w") as stream:
            sink = JsonLinesSink(stream)
            threading.Timer(0.2, sink.abandon).start()
            with pytest.raises(SinkError, match="gave up waiting"):
                sink([event(1)])
    finally:
        os.close(read_end)


# --------------------------------------------------------------------------- S3 and SQS


class Answers:
    """A boto3 client stand-in that answers with what it is given (answers botocore parsed)."""

    def __init__(self, *answers: Any) -> None:
        """Answer each call with the next of ``answers``."""
        self.answers = list(answers)
        self.calls: list[dict[str, Any]] = []

    def put_object(self, **params: Any) -> Any:
        """The next answer."""
        self.calls.append(params)
        return self.answers.pop(0)

    def send_message_batch(self, **params: Any) -> Any:
        """The next answer."""
        self.calls.append(params)
        return self.answers.pop(0)


def test_s3_believes_only_an_answer_with_an_etag() -> None:
    """A 200 without an ETag (cut short) is not a write."""
    with pytest.raises(DeadLetterError, match="no ETag"):
        S3DeadLetters(Answers({}), "s3://b/p").write([skipped(1)])


def test_s3_locations_are_checked_and_prefixes_end_with_a_slash() -> None:
    """``s3://`` alone is refused; ``s3://b/p`` writes under ``p/``."""
    with pytest.raises(ConfigurationError, match="not an S3 location"):
        S3DeadLetters(Answers(), "s3://")
    client = Answers({"ETag": '"x"'})
    S3DeadLetters(client, "s3://b/p").write([skipped(1)])
    assert client.calls[0]["Key"].startswith("p/")


def test_sqs_sends_failed_entries_again() -> None:
    """An entry SQS reports failed is sent again; taken on the second round."""
    client = Answers(
        {"Successful": [{"Id": "0"}], "Failed": [{"Id": "1", "Code": "InternalError"}]},
        {"Successful": [{"Id": "1"}]},
    )
    SQSDeadLetters(client, "q").write([skipped(1), skipped(2)])
    assert [len(c["Entries"]) for c in client.calls] == [2, 1]


def test_sqs_that_keeps_failing_an_entry_is_a_dead_letter_error() -> None:
    """Three rounds, still failed: not written, and the reason said."""
    failed = {"Successful": [], "Failed": [{"Id": "0", "Code": "KmsThrottled"}]}
    with pytest.raises(DeadLetterError, match="KmsThrottled"):
        SQSDeadLetters(Answers(failed, failed, failed), "q").write([skipped(1)])


def test_sqs_answer_that_forgets_an_entry_is_not_believed() -> None:
    """An answer that names neither success nor failure for an entry: not written."""
    with pytest.raises(DeadLetterError, match="does not name every entry"):
        SQSDeadLetters(Answers({"Successful": [{"Id": "0"}]}), "q").write([skipped(1), skipped(2)])


def test_sqs_batches_by_ten() -> None:
    """25 letters: three SendMessageBatch calls (10, 10, 5)."""
    answers = [{"Successful": [{"Id": str(n)} for n in range(size)]} for size in (10, 10, 5)]
    client = Answers(*answers)
    SQSDeadLetters(client, "q").write([skipped(n) for n in range(25)])
    assert [len(c["Entries"]) for c in client.calls] == [10, 10, 5]


@pytest.mark.integration
def test_sqs_error_names_the_aws_code(aws: LocalAWS) -> None:
    """A queue that does not exist: DeadLetterError with SQS's code, no request details."""
    url = f"{aws.endpoint_url}/123456789012/missing"
    with pytest.raises(DeadLetterError, match=r"QueueDoesNotExist|NonExistentQueue"):
        SQSDeadLetters(aws.client("sqs"), url).write([skipped(1)])


def test_remote_target_refuses_what_it_does_not_know() -> None:
    """Neither ``s3://`` nor a queue URL: a configuration error saying what is expected."""
    with pytest.raises(ConfigurationError, match="not an S3 prefix"):
        remote_target("ftp://x", lambda _service: None)
