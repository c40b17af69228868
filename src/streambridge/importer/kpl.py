"""KPL de-aggregation: the user records inside one Kinesis record (pure: no I/O, no boto3).

The Kinesis Producer Library aggregates by default, and so do Flink's KPL sink, Fluent Bit's Go
``kinesis`` plugin and aws-kinesis-agg. Such a record is the magic bytes ``F3 89 9A C2``, a
protobuf ``AggregatedRecord``, then the MD5 digest of the protobuf::

    message AggregatedRecord {
      repeated string partition_key_table     = 1;
      repeated string explicit_hash_key_table = 2;
      repeated Record records                 = 3;
    }
    message Record {
      required uint64 partition_key_index     = 1;
      optional uint64 explicit_hash_key_index = 2;
      required bytes  data                    = 3;
      repeated Tag    tags                    = 4;   // skipped
    }

The ``i``-th user record has sub-sequence number ``i`` (as the KCL numbers them). A record with
the magic bytes whose digest or protobuf is not valid is not aggregated: like the KCL, the
importer then treats it as a plain record (which cannot be JSON: it starts with the magic).

The decoder is written by hand for this one message: measured in ``bench/importer.py``, it
de-aggregates fast enough next to the JSON decoding of the same user records, and it needs no
``protobuf`` package (see ``docs/importer.md``).
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["MAGIC", "NotAggregatedError", "UserRecord", "deaggregate", "is_aggregated"]

#: The first four bytes of every KPL-aggregated record.
MAGIC = b"\xf3\x89\x9a\xc2"
_DIGEST = 16  # MD5
_VARINT, _FIXED64, _LENGTH, _FIXED32 = 0, 1, 2, 5


class UserRecord(NamedTuple):
    """One user record of an aggregated record (a tuple: thousands are made per read).

    Attributes:
        partition_key: The partition key the producer gave it.
        explicit_hash_key: Its explicit hash key, when it had one.
        data: Its data.
    """

    partition_key: str
    explicit_hash_key: str | None
    data: bytes


class NotAggregatedError(ValueError):
    """Data with the magic bytes that is not a valid aggregated record (the reason says why)."""


def is_aggregated(data: bytes) -> bool:
    """Whether ``data`` starts with the KPL magic bytes (it may still be corrupt)."""
    return data[:4] == MAGIC


def deaggregate(data: bytes) -> list[UserRecord]:
    """The user records of a KPL-aggregated record, in order (sub-sequence 0, 1, …).

    Raises:
        NotAggregatedError: ``data`` lacks the magic bytes, is too short, its MD5 digest does
            not match, or its protobuf is not a valid ``AggregatedRecord``.
    """
    if not is_aggregated(data):
        raise NotAggregatedError("it lacks the KPL magic bytes")
    if len(data) < len(MAGIC) + _DIGEST:
        raise NotAggregatedError("it is too short to hold an MD5 digest")
    message, digest = data[len(MAGIC) : -_DIGEST], data[-_DIGEST:]
    from hashlib import md5  # noqa: PLC0415 - hashlib (OpenSSL) off a Lambda's cold path

    if md5(message).digest() != digest:  # noqa: S324 - the format's checksum
        raise NotAggregatedError("its MD5 digest does not match")
    try:
        return _aggregated_record(message)
    except (IndexError, UnicodeDecodeError) as exc:  # cut short, or keys that are not UTF-8
        raise NotAggregatedError(f"its protobuf is not valid ({type(exc).__name__})") from None


def _varint(buffer: bytes, position: int) -> tuple[int, int]:
    byte = buffer[position]
    if byte < 0x80:  # noqa: PLR2004 - the common case: one byte
        return byte, position + 1
    result, shift = byte & 0x7F, 7
    position += 1
    while True:
        byte = buffer[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:  # noqa: PLR2004
            return result, position
        shift += 7
        if shift > 63:  # noqa: PLR2004 - a varint is at most 10 bytes
            raise NotAggregatedError("its protobuf is not valid (a varint too long)")


def _skip(buffer: bytes, position: int, wire: int) -> int:
    """The position after a field of an unknown number."""
    if wire == _VARINT:
        return _varint(buffer, position)[1]
    if wire == _LENGTH:
        size, position = _varint(buffer, position)
        return position + size
    if wire in (_FIXED64, _FIXED32):
        return position + (8 if wire == _FIXED64 else 4)
    raise NotAggregatedError(f"its protobuf is not valid (wire type {wire})")


def _aggregated_record(message: bytes) -> list[UserRecord]:
    partition_keys: list[str] = []
    hash_keys: list[str] = []
    spans: list[tuple[int, int]] = []
    position, end = 0, len(message)
    while position < end:
        key, position = _varint(message, position)
        if key & 7 != _LENGTH:
            position = _skip(message, position, key & 7)
            continue
        size, position = _varint(message, position)
        stop = position + size
        if stop > end:
            raise NotAggregatedError("its protobuf is not valid (cut short)")
        number = key >> 3
        if number == 3:  # noqa: PLR2004 - field numbers of the format
            spans.append((position, stop))
        elif number == 1:
            partition_keys.append(message[position:stop].decode("utf-8"))
        elif number == 2:  # noqa: PLR2004
            hash_keys.append(message[position:stop].decode("utf-8"))
        position = stop
    if position != end:
        raise NotAggregatedError("its protobuf is not valid (cut short)")
    return [_user_record(message, span, partition_keys, hash_keys) for span in spans]


def _user_record(
    message: bytes, span: tuple[int, int], partition_keys: list[str], hash_keys: list[str]
) -> UserRecord:
    key_index: int | None = None
    hash_index: int | None = None
    data: bytes | None = None
    position, end = span
    while position < end:
        key, position = _varint(message, position)
        if key == 0x08:  # noqa: PLR2004 - field 1, varint: partition_key_index
            key_index, position = _varint(message, position)
        elif key == 0x10:  # noqa: PLR2004 - field 2, varint: explicit_hash_key_index
            hash_index, position = _varint(message, position)
        elif key == 0x1A:  # noqa: PLR2004 - field 3, bytes: data
            size, position = _varint(message, position)
            data, position = message[position : position + size], position + size
        else:
            position = _skip(message, position, key & 7)
    if position != end or key_index is None or data is None:
        raise NotAggregatedError("its protobuf is not valid (a record is cut short or lacks data)")
    if key_index >= len(partition_keys) or (
        hash_index is not None and hash_index >= len(hash_keys)
    ):
        raise NotAggregatedError("its protobuf is not valid (a key index is out of range)")
    hash_key = hash_keys[hash_index] if hash_index is not None else None
    return UserRecord(partition_keys[key_index], hash_key, data)
