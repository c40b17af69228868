"""Kinesis records -> PostHog events, and skipped records with reasons (pure: no I/O, no boto3).

One conversion for every engine that reads a stream: :class:`~streambridge.KinesisImporter`
today, and adapters that take records from elsewhere (Lambda, the KCL) — the same record gives
the same events with the same uuids whichever reads it, so PostHog drops the duplicates.

A KPL-aggregated record is first split into its user records
(:func:`~streambridge.importer.kpl.deaggregate`); a record, or each user record, is decoded
(:func:`~streambridge.importer.decoding.decode_record`: one or more JSON documents), and each
document becomes one event (:func:`~streambridge.importer.events.to_event`) whose uuid is
:func:`~streambridge.importer.events.event_uuid` of stream, shard, sequence number, the user
record's sub-sequence number (aggregated records only) and the document's position. Whatever
cannot become an event is a :class:`~streambridge.SkippedRecord` with the reason; one bad
record never stops the others.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from streambridge._json import loads
from streambridge.errors import DecodeError, UnusableRecordError
from streambridge.importer.decoding import decode_record
from streambridge.importer.events import PostHogEvent, _event, event_uuid, uuid_maker
from streambridge.importer.keys import getter, parse_path
from streambridge.importer.kpl import MAGIC as KPL_MAGIC
from streambridge.importer.kpl import NotAggregatedError, deaggregate, is_aggregated
from streambridge.importer.results import SinkRefusal, SkippedRecord
from streambridge.importer.settings import ImporterSettings

__all__ = ["RecordConverter"]

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _unexpected(exc: Exception) -> str:
    """The skip reason for an error no rule foresaw (a bug of ours: please report it)."""
    return f"cannot be converted ({type(exc).__name__}: {str(exc)[:200]})"


class RecordConverter:
    """Turns a shard's records into events, with the settings' event key and mappings.

    A record is a mapping as botocore's ``GetRecords`` returns it: ``Data`` (bytes),
    ``SequenceNumber`` and, optionally, ``ApproximateArrivalTimestamp`` (the event's timestamp
    when no mapping gives one; the epoch when absent) and ``SubSequenceNumber`` (a user record
    an engine de-aggregated already, as the KCL does).
    """

    def __init__(self, settings: ImporterSettings) -> None:
        """A converter for ``settings`` (stream name, event key, mappings, default id)."""
        self.stream = settings.stream_name
        self.event_key = parse_path(settings.event_key)
        self._get_name = getter(self.event_key)
        self.mappings = settings.additional_property_mappings
        self.default_distinct_id = settings.default_distinct_id
        self.personless = settings.personless
        self._build = functools.partial(
            _event,
            self.event_key,
            self._get_name,
            tuple((mapping.get, mapping.target) for mapping in self.mappings),
            self.default_distinct_id,
            self.personless,
        )

    def convert(
        self, shard_id: str, records: Iterable[Mapping[str, Any]]
    ) -> tuple[list[PostHogEvent], list[SkippedRecord]]:
        """The events of ``records``, in order, and the records (or documents) skipped."""
        events: list[PostHogEvent] = []
        skipped: list[SkippedRecord] = []
        make_uuid = uuid_maker(self.stream, shard_id)
        build = self._build
        for record in records:
            sequence: str = record["SequenceNumber"]
            arrival: datetime = record.get("ApproximateArrivalTimestamp") or _EPOCH
            whole: bytes = record["Data"]
            if whole[:1] == b"{" and "SubSequenceNumber" not in record:
                # the common record, one JSON object, in one step (anything odd: below)
                try:
                    value = loads(whole)
                except Exception:  # noqa: BLE001, S110 - decode_record below says what
                    pass
                else:
                    try:
                        events.append(build(value, arrival, make_uuid(sequence, 0, None)))
                    except UnusableRecordError as exc:
                        skipped.append(self._skip(shard_id, sequence, 0, exc.reason, whole, None))
                    except Exception as exc:  # noqa: BLE001 - the last line, as below
                        reason = _unexpected(exc)
                        skipped.append(self._skip(shard_id, sequence, 0, reason, whole, None))
                    continue
            plain = whole[:4] != KPL_MAGIC and "SubSequenceNumber" not in record
            for sub, data in ((None, whole),) if plain else _payloads(record):
                try:
                    values = _decode(data, plain)
                except DecodeError as exc:
                    skipped.append(
                        SkippedRecord(shard_id, sequence, 0, exc.reason, data, sub, self.stream)
                    )
                    continue
                except Exception as exc:  # noqa: BLE001 - the last line: one record never stops a shard
                    reason = _unexpected(exc)
                    skipped.append(
                        SkippedRecord(shard_id, sequence, 0, reason, data, sub, self.stream)
                    )
                    continue
                for position, value in enumerate(values):
                    try:
                        events.append(build(value, arrival, make_uuid(sequence, position, sub)))
                    except UnusableRecordError as exc:  # noqa: PERF203 - rare, and per document
                        skipped.append(
                            self._skip(shard_id, sequence, position, exc.reason, data, sub)
                        )
                    except Exception as exc:  # noqa: BLE001 - the last line, as above
                        skipped.append(
                            self._skip(shard_id, sequence, position, _unexpected(exc), data, sub)
                        )
        return events, skipped

    def _skip(
        self, shard: str, sequence: str, position: int, reason: str, data: bytes, sub: int | None
    ) -> SkippedRecord:
        return SkippedRecord(shard, sequence, position, reason, data, sub, self.stream)

    def refused(
        self,
        shard_id: str,
        records: Iterable[Mapping[str, Any]],
        refusals: Sequence[SinkRefusal],
    ) -> list[SkippedRecord]:
        """The sink's refusals as skipped records (``"refused by the sink: …"``), in order."""
        reasons = {r.event.uuid: r.reason for r in refusals}
        skipped: list[SkippedRecord] = []
        for record in records:  # rare: find each refused event's record again
            sequence = record["SequenceNumber"]
            for sub, data in _payloads(record):
                try:
                    count = len(decode_record(data))
                except Exception:  # noqa: BLE001, S112 - it became no event, so none was refused
                    continue
                for position in range(count):
                    uuid = event_uuid(self.stream, shard_id, sequence, position, sub)
                    reason = reasons.get(uuid)
                    if reason is not None:
                        text = f"refused by the sink: {reason}"
                        skipped.append(
                            SkippedRecord(
                                shard_id, sequence, position, text, data, sub, self.stream
                            )
                        )
        return skipped


def _decode(data: bytes, plain: bool) -> list[Any]:
    """:func:`decode_record`, with a short way for a plain record holding one JSON object."""
    if plain and data[:1] == b"{":
        try:
            return [loads(data)]
        except Exception:  # noqa: BLE001, S110 - anything odd: decode_record says what
            pass
    return decode_record(data)


def _payloads(record: Mapping[str, Any]) -> Iterator[tuple[int | None, bytes]]:
    """``(sub-sequence, data)`` of each user record of an aggregated record; else ``(None, data)``.

    An aggregated record that is not valid is a plain record (as the KCL does it). A record
    with a ``SubSequenceNumber`` was de-aggregated already (by the KCL): it is used as it is.
    """
    data: bytes = record["Data"]
    if "SubSequenceNumber" in record:
        yield record["SubSequenceNumber"], data
        return
    if is_aggregated(data):
        try:
            users = deaggregate(data)
        except NotAggregatedError:
            users = []
        if users:
            for sub, user in enumerate(users):
                yield sub, user.data
            return
    yield None, data  # a plain record; or an aggregate that is corrupt or empty: skipped
