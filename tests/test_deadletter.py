"""Dead-letter lines: strict UTF-8 whatever the record held, exact bytes, read back."""

from __future__ import annotations

import base64
import json
import threading
from pathlib import Path

import pytest

from streambridge import (
    DeadLetter,
    DeadLetterFile,
    FailedRecord,
    SkippedRecord,
    read_dead_letters,
)
from streambridge.deadletter import dead_letter_line

DATA = [
    b'{"events": [1]}',
    b"\xff\xfe not UTF-8",
    b'{"v": "\\ud800"}',  # valid JSON text whose value UTF-8 cannot hold
    b"[" * 3_000 + b"]" * 3_000,
    "caf\u00e9 \U0001f600".encode(),
    b"not json",
]


@pytest.mark.parametrize("data", DATA, ids=range(len(DATA)))
def test_lines_are_strict_utf8_and_keep_the_exact_bytes(data: bytes, tmp_path: Path) -> None:
    """Every line decodes as strict UTF-8 JSON; reading it back gives the same bytes."""
    failed = FailedRecord(data, "ServiceUnavailableException", "Slow down \udc80", 10)
    skipped = SkippedRecord("shard-1", "42", 0, "not JSON", data)
    path = tmp_path / "dead.jsonl"
    with DeadLetterFile(path) as letters:
        letters(failed)
        letters(skipped)
        assert 2 == letters.written
    for raw in path.read_bytes().splitlines():
        json.loads(raw.decode("utf-8"))
    back = list(read_dead_letters(path))
    assert [data, data] == [letter.data for letter in back]
    assert ["failed", "skipped"] == [letter.kind for letter in back]
    assert back[0].reason.startswith("ServiceUnavailableException: Slow down")
    assert "not JSON" == back[1].reason


def test_a_json_record_is_also_shown_parsed() -> None:
    """A forwarder line shows the record as JSON too, for people and jq."""
    line = json.loads(dead_letter_line(FailedRecord(b'{"a": 1}', "X", "m", 1)))
    assert ({"a": 1}, '{"a": 1}', 1) == (line["record"], line["data"], line["attempts"])
    line = json.loads(dead_letter_line(FailedRecord(b"\xff", "X", "m", 1)))
    assert ("/w==", None) == (line["data_base64"], line.get("record"))
    assert b"\xff" == base64.b64decode(line["data_base64"])


def test_appends_from_several_threads(tmp_path: Path) -> None:
    """Lines from several threads are whole; a reopened file is appended to."""
    path = tmp_path / "dead.jsonl"
    DeadLetterFile(path).close()
    with DeadLetterFile(path, fsync=True) as letters:

        def write(n: int) -> None:
            for i in range(50):
                letters(SkippedRecord("s", str(n), i, "r", b"x" * 1000))

        threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    with DeadLetterFile(path) as letters:
        assert 1 == letters.write_undelivered([b"y"], "AccessDeniedException", "denied")
    letters_read = list(read_dead_letters(path))
    assert 201 == len(letters_read)
    assert DeadLetter("failed", b"y", "AccessDeniedException: denied") == letters_read[-1]


def test_bad_lines_say_where(tmp_path: Path) -> None:
    """A line that is not a dead letter is an error naming the line; blank lines are fine."""
    path = tmp_path / "dead.jsonl"
    path.write_text('\n{"kind": "failed", "data": "x"}\n{"kind": "failed"}\n')
    with pytest.raises(ValueError, match="line 3 is not a dead-letter line"):
        list(read_dead_letters(path))
