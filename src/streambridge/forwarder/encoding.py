"""Firehose records: JSON encoding, size limits, ``PutRecordBatch`` packing.

Pure: no I/O. The forwarder builds each request from these functions. The JSON codec itself
(:func:`encode_record`: orjson when installed, the standard library for what orjson refuses)
is the one both halves share, in :mod:`streambridge._json`; it is re-exported here.

Firehose limits (Direct PUT): a record's data is at most 1,000 KiB (1,024,000 bytes) *before*
base64 — botocore base64-encodes blobs itself, so records are passed as raw bytes; a
``PutRecordBatch`` call takes at most 500 records and 4 MB. AWS does not say whether the 4 MB
is counted before or after base64; 4 x 1 MB raw records are known to be accepted, so the raw
size is counted, against a conservative 4,000,000 bytes by default.
"""

from __future__ import annotations

import reprlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import attrs

from streambridge._json import HAS_ORJSON, Encoder, encode_record, encode_record_stdlib
from streambridge.errors import EncodingError, MalformedAnswerError
from streambridge.forwarder.answers import batch_failures
from streambridge.forwarder.results import DroppedEvent, FailedRecord

__all__ = [
    "HAS_ORJSON",
    "MAX_BATCH_BYTES",
    "MAX_BATCH_RECORDS",
    "MAX_RECORD_BYTES",
    "RECORD_TOO_LARGE",
    "BatchPacker",
    "Encoder",
    "Oversize",
    "dropped_events",
    "encode_payloads",
    "encode_record",
    "encode_record_stdlib",
    "failed_entries",
    "fit_record",
    "pack_records",
    "readable",
    "record_fits",
]

#: Largest ``Data`` of one Firehose record, before base64 (botocore shape ``max: 1024000``).
MAX_RECORD_BYTES = 1_024_000
#: Most records in one ``PutRecordBatch`` call.
MAX_BATCH_RECORDS = 500
#: Most bytes of record data in one ``PutRecordBatch`` call (4 MB, counted conservatively).
MAX_BATCH_BYTES = 4_000_000
#: The error code of a record over the size limit (never sent).
RECORD_TOO_LARGE = "RecordTooLarge"


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


def encode_payloads(
    payloads: Iterable[Mapping[str, Any]],
    *,
    encode: Encoder = encode_record,
    limit: int = MAX_RECORD_BYTES,
    delimiter: bytes = b"",
) -> tuple[list[bytes], list[FailedRecord]]:
    """Encode record payloads with :func:`fit_record`; what cannot be sent comes back failed.

    Returns:
        The records to send, in order; and, never sent (``attempts`` 0), each payload JSON
        cannot represent (``"EncodingError"``, its data :func:`readable`) and each record over
        ``limit`` (``"RecordTooLarge"``).
    """
    records: list[bytes] = []
    failures: list[FailedRecord] = []
    room = limit - len(delimiter)
    for payload in payloads:
        try:
            data = encode(payload)
            if len(data) <= room:  # the common case, without fit_record's lists
                records.append(data + delimiter)
                continue
            fitted, oversize = fit_record(payload, encode=encode, limit=limit, delimiter=delimiter)
        except EncodingError as exc:  # not representable as JSON: return it, readable
            failures.append(FailedRecord(readable(payload), "EncodingError", str(exc), 0))
            continue
        records.extend(fitted)
        failures.extend(
            FailedRecord(big.data, RECORD_TOO_LARGE, big.message, 0) for big in oversize
        )
    return records, failures


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
        (see :func:`streambridge.forwarder.answers.batch_failures`): then nothing is known to be
        delivered.
    """
    try:
        return batch_failures(response, sent)
    except MalformedAnswerError:
        return None


class _Readable(reprlib.Repr):
    """``repr`` to a depth of 100, whole otherwise; integers past ``str()``'s limit summarised."""

    def __init__(self) -> None:
        super().__init__()
        self.maxlevel = 100
        self.maxstring = self.maxother = self.maxlong = 1_000_000
        self.maxdict = self.maxlist = self.maxtuple = self.maxset = 1_000_000
        self.maxfrozenset = self.maxdeque = self.maxarray = 1_000_000

    def repr_int(self, x: int, level: int) -> str:
        try:
            return super().repr_int(x, level)
        except ValueError:
            return f"<an integer of about {x.bit_length() * 0.30103:.0f} digits>"


_READABLE = _Readable()


def readable(payload: object) -> bytes:
    """A payload JSON cannot hold, as text a person can read (deeper than 100 levels: ``...``).

    The data of the :class:`~streambridge.FailedRecord` of a payload that cannot be encoded.
    Never raises: no recursion error, and lone surrogates are written as escapes.
    """
    try:
        text = _READABLE.repr(payload)
    except Exception:  # noqa: BLE001 - an object whose own __repr__ raises
        text = f"<a {type(payload).__name__} that cannot be shown>"
    return text.encode("utf-8", "backslashreplace")


def dropped_events(batch: int, items: Iterable[tuple[int, str, Any]]) -> list[DroppedEvent]:
    """A batch's malformed events (``FilterOutcome.dropped_items``) as DroppedEvents.

    Each holds the event as JSON, or as readable text when it cannot be JSON.
    """
    out = []
    for position, reason, event in items:
        try:
            data = encode_record(event)
        except EncodingError:
            data = readable(event)
        out.append(DroppedEvent(batch, position, reason, data))
    return out
