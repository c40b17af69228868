"""Records: JSON encoding and decoding, Firehose size limits, ``PutRecordBatch`` packing.

Pure: no I/O. The forwarder builds each request from these functions and reads each response
through :func:`failed_entries`; the importer reads each Kinesis record through
:func:`decode_record`.

Firehose limits (Direct PUT): a record's data is at most 1,000 KiB (1,024,000 bytes) *before*
base64 — botocore base64-encodes blobs itself, so records are passed as raw bytes; a
``PutRecordBatch`` call takes at most 500 records and 4 MB. AWS does not say whether the 4 MB
is counted before or after base64; 4 x 1 MB raw records are known to be accepted, so the raw
size is counted, against a conservative 4,000,000 bytes by default.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import attrs

from streambridge.answers import batch_failures
from streambridge.errors import DecodeError, EncodingError, MalformedAnswerError

_orjson: Any
try:  # the `fast` extra
    import orjson as _orjson
except ImportError:  # pragma: no cover - exercised in environments without the extra
    _orjson = None

__all__ = [
    "HAS_ORJSON",
    "MAX_BATCH_BYTES",
    "MAX_BATCH_RECORDS",
    "MAX_DECOMPRESSED_BYTES",
    "MAX_RECORD_BYTES",
    "BatchPacker",
    "Oversize",
    "decode_record",
    "encode_record",
    "encode_record_stdlib",
    "failed_entries",
    "fit_record",
    "pack_records",
    "record_fits",
]

#: Largest ``Data`` of one Firehose record, before base64 (botocore shape ``max: 1024000``).
MAX_RECORD_BYTES = 1_024_000
#: Most records in one ``PutRecordBatch`` call.
MAX_BATCH_RECORDS = 500
#: Most bytes of record data in one ``PutRecordBatch`` call (4 MB, counted conservatively).
MAX_BATCH_BYTES = 4_000_000

#: Whether orjson (the ``fast`` extra) is installed and used by :func:`encode_record`.
HAS_ORJSON = _orjson is not None

Encoder = Callable[[Any], bytes]

_stdlib_dumps = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), allow_nan=False, check_circular=False
).encode


def encode_record_stdlib(obj: Any) -> bytes:
    """Encode ``obj`` as compact UTF-8 JSON with the standard library.

    Raises:
        EncodingError: ``obj`` holds something JSON cannot represent (NaN, infinity, a
            non-string key that is not a number, an object of another type).
    """
    try:
        return _stdlib_dumps(obj).encode("utf-8")
    except UnicodeEncodeError:  # "\ud800" is valid JSON text, but no UTF-8 encoder takes it
        raise EncodingError("holds a lone surrogate, which UTF-8 cannot encode") from None
    except RecursionError:
        raise EncodingError("value is nested too deeply to encode as JSON") from None
    except (TypeError, ValueError) as exc:
        raise EncodingError(f"value cannot be encoded as JSON: {exc}") from None


if _orjson is not None:
    _orjson_dumps = _orjson.dumps
    _OrjsonError = _orjson.JSONEncodeError

    def encode_record(obj: Any) -> bytes:
        """Encode ``obj`` as compact UTF-8 JSON; integers of any size stay exact.

        Uses orjson when the ``fast`` extra is installed, and the standard library for the
        values orjson refuses (integers beyond 64 bits). With orjson, a float NaN or infinity
        is written as ``null``; the standard library refuses it with :class:`EncodingError`.

        Raises:
            EncodingError: ``obj`` holds something JSON cannot represent.
        """
        try:
            return _orjson_dumps(obj)  # type: ignore[no-any-return,unused-ignore]
        except _OrjsonError:
            return encode_record_stdlib(obj)

else:  # pragma: no cover - exercised in environments without the extra
    encode_record = encode_record_stdlib


def record_fits(data: bytes, limit: int = MAX_RECORD_BYTES) -> bool:
    """Whether one record's data is within the Firehose limit (counted before base64)."""
    return len(data) <= limit


@attrs.frozen
class Oversize:
    """A record that cannot be sent because it is over the size limit, even alone.

    Attributes:
        data: The encoded record (one event with its envelope, or the whole eventless batch).
        size: Its size in bytes.
        limit: The limit it exceeds.
    """

    data: bytes
    size: int
    limit: int

    @property
    def message(self) -> str:
        """A sentence for ``FailedRecord.error_message``."""
        return (
            f"record of {self.size:,} bytes exceeds the Firehose limit of {self.limit:,} bytes "
            f"even with a single event; it was not sent"
        )


def fit_record(
    payload: Mapping[str, Any],
    *,
    encode: Encoder = encode_record,
    limit: int = MAX_RECORD_BYTES,
    delimiter: bytes = b"",
) -> tuple[list[bytes], list[Oversize]]:
    r"""Encode one record payload, splitting it by events when it is over ``limit``.

    A batch over the limit becomes several records, each with the full envelope and a run of
    consecutive events, each within the limit. An event that does not fit even alone (with
    its envelope) becomes an :class:`Oversize` and is never sent; the other events still are.

    Args:
        payload: A batch (dict) to send as one record.
        encode: The JSON encoder.
        limit: The largest record, in bytes, delimiter included.
        delimiter: Bytes appended to every record (``b"\\n"`` for newline-delimited output).

    Returns:
        The records to send, in event order, and the oversize records.
    """
    data = encode(payload) + delimiter
    if len(data) <= limit:
        return [data], []
    events = payload.get("events")
    if not isinstance(events, list) or len(events) <= 1:
        return [], [Oversize(data, len(data), limit)]
    envelope = dict(payload)
    envelope["events"] = []
    base = len(encode(envelope)) + len(delimiter)
    sizes = [len(encode(event)) for event in events]
    records: list[bytes] = []
    oversize: list[Oversize] = []
    chunk: list[Any] = []
    chunk_size = base

    def close() -> None:
        if chunk:
            envelope["events"] = chunk
            records.append(encode(envelope) + delimiter)

    for event, size in zip(events, sizes, strict=True):
        if base + size > limit:
            single = dict(payload)
            single["events"] = [event]
            blob = encode(single) + delimiter
            oversize.append(Oversize(blob, len(blob), limit))
            continue
        extra = size + (1 if chunk else 0)  # a comma between events
        if chunk_size + extra > limit:
            close()
            chunk = []
            chunk_size = base
            extra = size
        chunk.append(event)
        chunk_size += extra
    close()
    return records, oversize


class BatchPacker:
    """Packs records into ``PutRecordBatch``-sized groups, streaming.

    :meth:`add` returns a full group when the next record would not fit, so memory holds at
    most one group. Records keep their order.
    """

    def __init__(
        self, *, max_records: int = MAX_BATCH_RECORDS, max_bytes: int = MAX_BATCH_BYTES
    ) -> None:
        """Create a packer for groups of at most ``max_records`` records and ``max_bytes``."""
        if max_records < 1 or max_bytes < 1:
            raise ValueError("max_records and max_bytes must be positive")
        self.max_records = max_records
        self.max_bytes = max_bytes
        self._records: list[bytes] = []
        self._bytes = 0

    @property
    def pending(self) -> Sequence[bytes]:
        """The records waiting for the next group."""
        return self._records

    def add(self, record: bytes) -> list[bytes] | None:
        """Add a record; return the previous group when this one starts a new group."""
        full = None
        size = len(record)
        if self._records and (
            len(self._records) >= self.max_records or self._bytes + size > self.max_bytes
        ):
            full = self.drain()
        self._records.append(record)
        self._bytes += size
        return full

    def drain(self) -> list[bytes]:
        """Return and forget the records waiting, as one group (possibly empty)."""
        group, self._records, self._bytes = self._records, [], 0
        return group


def pack_records(
    records: Iterable[bytes],
    *,
    max_records: int = MAX_BATCH_RECORDS,
    max_bytes: int = MAX_BATCH_BYTES,
) -> Iterator[list[bytes]]:
    """Group records, in order, into calls of at most ``max_records`` and ``max_bytes``.

    A record larger than ``max_bytes`` on its own is put in a group alone (check record sizes
    with :func:`record_fits` first).
    """
    packer = BatchPacker(max_records=max_records, max_bytes=max_bytes)
    for record in records:
        group = packer.add(record)
        if group:
            yield group
    last = packer.drain()
    if last:
        yield last


def failed_entries(response: Mapping[str, Any], sent: int) -> list[tuple[int, str, str]] | None:
    """Read a ``PutRecordBatch`` answer: which entries failed, and why.

    Args:
        response: The parsed answer (``FailedPutCount``, ``RequestResponses``).
        sent: How many entries the request had.

    Returns:
        ``(index, error_code, error_message)`` for each failed entry, in request order; an
        empty list when every entry was delivered; None when the answer is not well formed
        (see :func:`streambridge.answers.batch_failures`): then nothing is known to be
        delivered.
    """
    try:
        return batch_failures(response, sent)
    except MalformedAnswerError:
        return None


# --------------------------------------------------------------------------- decoding

#: Largest payload a gzip record may decompress to (a guard against compression bombs).
MAX_DECOMPRESSED_BYTES = 64 * 1024 * 1024

_BOM = b"\xef\xbb\xbf"
_GZIP_MAGIC = b"\x1f\x8b"
_KPL_MAGIC = b"\xf3\x89\x9a\xc2"
# orjson turns integers beyond 64 bits into floats; a run of 19+ digits sends the record to the
# standard library, which keeps them exact. (Mapping digits to "0" and the rest to " ", then
# looking for 19 zeros, finds such a run several times faster than a regular expression.)
_DIGITS_TO_ZERO = bytes(48 if 48 <= i <= 57 else 32 for i in range(256))  # noqa: PLR2004
_NINETEEN_DIGITS = b"0" * 19
_TOO_DEEP = "nested too deeply to decode"


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_stdlib_decoder = json.JSONDecoder(parse_constant=_reject_constant)


def _loads(data: bytes) -> Any:
    if _orjson is not None and _NINETEEN_DIGITS not in data.translate(_DIGITS_TO_ZERO):
        return _orjson.loads(data)
    return _stdlib_decoder.decode(data.decode("utf-8"))


def decode_record(data: bytes) -> list[Any]:
    """Decode one Kinesis record's data into the JSON values it holds.

    * UTF-8 JSON; a leading byte-order mark is tolerated; integers of any size stay exact.
    * gzip-compressed data (CloudWatch Logs subscriptions, for one) is detected by its magic
      bytes and decompressed first (at most :data:`MAX_DECOMPRESSED_BYTES`).
    * Several JSON documents in one record — newline-delimited or simply concatenated — give
      several values, in order.

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
    elif data[:4] == _KPL_MAGIC:
        raise DecodeError("KPL-aggregated record (de-aggregation is not supported)")
    if data[:3] == _BOM:
        data = data[3:]
    if not data.strip():
        raise DecodeError("empty record")
    try:
        return [_loads(data)]
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
    return _several(text)


def _several(text: str) -> list[Any]:
    values: list[Any] = []
    position = 0
    end = len(text)
    while True:
        while position < end and text[position] in " \t\r\n":
            position += 1
        if position >= end:
            return values
        try:
            value, position = _stdlib_decoder.raw_decode(text, position)
        except RecursionError:
            raise DecodeError(_TOO_DEEP) from None
        except ValueError as exc:
            where = f" (document {len(values) + 1})" if values else ""
            raise DecodeError(f"not JSON{where}: {exc}") from None
        values.append(value)


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
