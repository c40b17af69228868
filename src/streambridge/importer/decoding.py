"""Kinesis record bytes -> the JSON documents they hold (pure: no I/O, no boto3).

* UTF-8 JSON; a leading byte-order mark is tolerated; integers of any size stay exact (the
  shared codec, :mod:`streambridge._json`).
* gzip-compressed data (CloudWatch Logs subscriptions, for one) is detected by its magic bytes
  and decompressed first (at most :data:`MAX_DECOMPRESSED_BYTES`).
* Several JSON documents in one record — newline-delimited or simply concatenated — give
  several documents, in order.
* KPL-aggregated records are de-aggregated first, by :mod:`streambridge.importer.kpl` (the
  conversion does it); a record that has the KPL magic bytes here is refused with a reason.
"""

from __future__ import annotations

import zlib
from typing import Any

from streambridge._json import documents, loads
from streambridge.errors import DecodeError
from streambridge.importer.kpl import NotAggregatedError, deaggregate, is_aggregated

__all__ = ["MAX_DECOMPRESSED_BYTES", "decode_record"]

#: Largest payload a gzip record may decompress to (a guard against compression bombs).
MAX_DECOMPRESSED_BYTES = 64 * 1024 * 1024

_BOM = b"\xef\xbb\xbf"
_GZIP_MAGIC = b"\x1f\x8b"
_TOO_DEEP = "nested too deeply to decode"


def decode_record(data: bytes) -> list[Any]:
    """Decode one Kinesis record's data into the JSON values it holds.

    Args:
        data: The record's ``Data``, as botocore returns it (already base64-decoded).

    Returns:
        One or more decoded JSON values.

    Raises:
        DecodeError: The data is empty, not UTF-8, not JSON, a broken gzip stream, or a
            KPL-aggregated record; :attr:`DecodeError.reason` says which.
    """
    if data[:2] == _GZIP_MAGIC:
        data = _gunzip(data)
    elif is_aggregated(data):
        raise DecodeError(_kpl_reason(data))
    if data[:3] == _BOM:
        data = data[3:]
    if not data.strip():
        raise DecodeError("empty record")
    try:
        return [loads(data)]
    except UnicodeDecodeError:
        raise DecodeError("not valid UTF-8") from None
    except RecursionError:
        raise DecodeError(_TOO_DEEP) from None
    except ValueError:
        pass  # maybe several documents, maybe not JSON at all: look closer
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise DecodeError("not valid UTF-8") from None
    try:
        return documents(text)
    except RecursionError:
        raise DecodeError(_TOO_DEEP) from None
    except ValueError as exc:
        raise DecodeError(str(exc)) from None


def _gunzip(data: bytes) -> bytes:
    try:
        decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
        out = decompressor.decompress(data, MAX_DECOMPRESSED_BYTES + 1)
    except zlib.error as exc:
        raise DecodeError(f"gzip data is corrupt: {exc}") from None
    if len(out) > MAX_DECOMPRESSED_BYTES:
        raise DecodeError(f"gzip data decompresses to more than {MAX_DECOMPRESSED_BYTES:,} bytes")
    if not decompressor.eof:
        raise DecodeError("gzip data is truncated")
    return out


def _kpl_reason(data: bytes) -> str:
    try:
        users = deaggregate(data)
    except NotAggregatedError as exc:  # treated as a plain record, as the KCL does: not JSON
        return f"has the KPL magic bytes but is not an aggregated record ({exc}), nor JSON"
    if not users:
        return "KPL-aggregated record with no user records"
    return "KPL-aggregated record: de-aggregate it first (streambridge.importer.kpl.deaggregate)"
