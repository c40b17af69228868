"""Unit tests of record decoding and the record-to-PostHog-event conversion."""

from __future__ import annotations

import gzip
import json
from typing import Any

import pytest

from streambridge import DecodeError
from streambridge._json import MAX_DEPTH
from streambridge.importer.decoding import MAX_DECOMPRESSED_BYTES, decode_record


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b'{"a":1}', [{"a": 1}]),
        (b'\xef\xbb\xbf{"a":1}', [{"a": 1}]),
        (b'  {"a":1}\n', [{"a": 1}]),
        (b'{"a":1}\n{"a":2}\n\n{"a":3}', [{"a": 1}, {"a": 2}, {"a": 3}]),
        (b'{"a":1}{"a":2}', [{"a": 1}, {"a": 2}]),
        (b'{"big":123456789012345678901234567890}', [{"big": 123456789012345678901234567890}]),
        (b'{"neg":-9999999999999999999}', [{"neg": -9999999999999999999}]),
        (b'{"u":"\xc3\xbc\xe2\x9c\x93"}', [{"u": "ü✓"}]),
        (b"[1,2]", [[1, 2]]),
    ],
)
def test_decode(data: bytes, expected: list[Any]) -> None:
    """UTF-8 JSON, BOM, NDJSON, concatenated documents, exact big integers."""
    assert expected == decode_record(data)


def test_decode_gzip_cloudwatch_style() -> None:
    """Gzip data (a CloudWatch Logs subscription envelope) is detected and decompressed."""
    envelope = {
        "messageType": "DATA_MESSAGE",
        "logGroup": "g",
        "logEvents": [{"id": "1", "message": "m"}],
    }
    assert [envelope] == decode_record(gzip.compress(json.dumps(envelope).encode()))


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty record"),
        (b" \n ", "empty record"),
        (b"\xff\xfe{}", "not valid UTF-8"),
        (b'{"a":NaN}', "not JSON"),
        (b"{nope", "not JSON"),
        (b'{"a":1}\n{oops}', "not JSON (document 2)"),
        (gzip.compress(b'{"a":1}')[:-6], "gzip data is truncated"),
        (b"\x1f\x8bnot gzip at all", "gzip data is corrupt"),
        (b"\xf3\x89\x9a\xc2rest", "has the KPL magic bytes but is not an aggregated record"),
    ],
)
def test_decode_errors_have_reasons(data: bytes, reason: str) -> None:
    """Undecodable data raises DecodeError with a stable reason."""
    with pytest.raises(DecodeError) as info:
        decode_record(data)
    assert info.value.reason.startswith(reason)


def test_decode_refuses_compression_bombs() -> None:
    """Gzip data that decompresses past the cap is refused, not expanded."""
    bomb = gzip.compress(b" " * (MAX_DECOMPRESSED_BYTES + 10))
    with pytest.raises(DecodeError, match="decompresses to more than"):
        decode_record(bomb)


@pytest.mark.parametrize(
    ("depth", "kept"), [(MAX_DEPTH, True), (MAX_DEPTH + 1, False), (700, False), (1_100, False)]
)
@pytest.mark.parametrize("several", [False, True])
def test_one_nesting_limit_on_every_python(depth: int, kept: bool, several: bool) -> None:
    """Up to 512 levels decode, deeper is refused — alike on 3.10 to 3.13, orjson or not.

    (Python's own decoder went about 900 levels on 3.11 and far deeper on 3.12: a 1,100-deep
    record was skipped on one and an event on the other.)
    """
    doc = b"[" * depth + b"]" * depth
    data = doc + b"\n" + doc if several else doc
    if kept:
        assert len(decode_record(data)) == (2 if several else 1)
    else:
        with pytest.raises(DecodeError, match="nested too deeply to decode"):
            decode_record(data)


def test_many_brackets_side_by_side_are_not_deep() -> None:
    """1,000 arrays next to each other: many brackets, depth 2, decoded."""
    data = b"[" + b",".join([b"[]"] * 1_000) + b"]"
    assert decode_record(data) == [[[]] * 1_000]
