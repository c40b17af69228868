"""botocore's wire format, read and written faster on the clients streambridge builds.

botocore reads every answer with the standard library's JSON and walks it shape by shape;
each record of a ``GetRecords`` answer costs a dozen calls, and each timestamp becomes a
``dateutil`` local-time datetime. It writes every request the same way: a ``PutRecordBatch``
of 500 records is validated member by member, each record base64-encoded through a walk, and
the ~1 MB body written by the standard library's JSON encoder. :func:`fast_clients` makes a
botocore session's clients

* read timestamps with :func:`parse_utc_timestamp` (UTC datetimes of the same instant), and
  blobs (a Kinesis record's data) with pybase64 when the ``fast`` extra is installed, the
  standard library deciding whatever is not strict base64;
* read ``GetRecords`` and ``PutRecordBatch`` answers with orjson (the ``fast`` extra) and
  their entries in one pass: each member converted by botocore's own blob and timestamp
  parsers, in the shape's order, ``null`` members left out, unknown keys dropped — exactly
  what botocore's walk gives (``tests/test_wire.py`` compares them on generated answers).
  Anything else — another operation, a body that is not one JSON object, an entry that is
  not an object, a shard's end (``ChildShards``), a number orjson may not have kept exact —
  goes to botocore's own parser;
* write a Firehose ``PutRecordBatch`` body in one join (each record's base64 by pybase64, with
  the ``fast`` extra): the same bytes as botocore's, its
  headers botocore's own (botocore serialises the call with the records left out), for
  parameters botocore would accept — a stream name of the allowed form, 1 to 500 records,
  each ``{"Data": bytes}`` of at most 1,024,000 bytes. Anything else goes to botocore's
  serialiser, and its validation says what is wrong.

The session's other clients are not changed by anything here unless built from it.
"""

from __future__ import annotations

import base64
import json
import re
from binascii import b2a_base64
from collections.abc import Callable
from datetime import datetime, timezone
from functools import partial
from itertools import chain, repeat
from operator import itemgetter
from typing import Any

from botocore import parsers as _parsers

from streambridge._json import _orjson

__all__ = ["fast_clients", "parse_utc_timestamp"]

#: The answers read in one pass, and the member holding their list of entries.
_FAST_OUTPUTS = {"GetRecordsOutput": "Records", "PutRecordBatchOutput": "RequestResponses"}
_BIG = 2.0**63  # a float this large may have been an integer orjson could not keep
#: orjson when installed (integers past 64 bits become floats: such answers go to botocore).
_decode: Any = json.loads if _orjson is None else _orjson.loads


class _NotPlainError(Exception):
    """Not an answer for the one pass: botocore's own parser reads it."""


#: botocore's parser classes, untyped: their stubs leave out the private methods used here.
_JSONParser: Any = _parsers.JSONParser
_ResponseParserFactory: Any = _parsers.ResponseParserFactory


def parse_utc_timestamp(value: Any) -> datetime:
    """Read a timestamp as botocore does, but in UTC: the same instant, without ``tzlocal()``.

    Epoch numbers become UTC datetimes at once. Anything else (ISO 8601, RFC 822, an epoch out
    of range) goes to botocore's own parser and is converted to UTC.
    """
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value, timezone.utc)
        except (OverflowError, OSError, ValueError):
            pass
    from botocore.utils import parse_timestamp  # noqa: PLC0415 - the rare path

    return parse_timestamp(value).astimezone(timezone.utc)


class _FastJSONParser(_JSONParser):  # type: ignore[misc]
    """botocore's JSON parser, with a one-pass reading of ``GetRecords`` and ``PutRecordBatch``."""

    def _handle_json_body(self, raw_body: bytes, shape: Any) -> Any:
        if shape is None or shape.name not in _FAST_OUTPUTS or not raw_body:
            return super()._handle_json_body(raw_body, shape)
        try:
            return self._one_pass(raw_body, shape)
        except _NotPlainError:  # botocore says what it makes of it
            return super()._handle_json_body(raw_body, shape)

    def _one_pass(self, raw_body: bytes, shape: Any) -> Any:
        try:
            parsed = _decode(raw_body)
        except (ValueError, RecursionError):
            raise _NotPlainError from None
        if type(parsed) is not dict or parsed.get("ChildShards"):  # a shard's end: rare
            raise _NotPlainError
        final: dict[str, Any] = {}
        for name, member in shape.members.items():
            value = parsed.get(member.serialization.get("name", name))
            if value is None:
                continue
            if type(value) is float and member.type_name != "timestamp":
                raise _NotPlainError  # maybe an integer past 64 bits: the stdlib keeps it
            if name == _FAST_OUTPUTS[shape.name] and type(value) is list:
                final[name] = self._entries(member.member, value)
            else:
                final[name] = self._parse_shape(member, value)
        return final

    def _entries(self, shape: Any, entries: list[Any]) -> list[Any]:
        """Each entry (a record, a put's answer) as botocore's walk makes it, without the walk."""
        members = [
            (name, member.serialization.get("name", name), member.type_name)
            for name, member in shape.members.items()
        ]
        if any(kind not in ("string", "blob", "timestamp") for _, _, kind in members):
            raise _NotPlainError
        if _all_text(members, entries):
            return entries  # each entry is already what the walk would make of it
        columns: list[Any] | None = self._columns(members, entries)
        if columns is not None:
            return columns
        blob, timestamp = self._blob_parser, self._timestamp_parser
        out = []
        for entry in entries:
            if type(entry) is not dict:
                raise _NotPlainError
            item = {}
            for name, key, kind in members:
                value = entry.get(key)
                if value is None:
                    continue
                if type(value) is float and (kind != "timestamp" or abs(value) >= _BIG):
                    raise _NotPlainError  # as above
                if kind == "blob":
                    value = blob(value)
                elif kind == "timestamp":
                    value = timestamp(value)
                item[name] = value
            out.append(item)
        return out

    def _columns(self, members: list[tuple[str, str, str]], entries: list[Any]) -> Any:
        """A page of alike entries (a ``GetRecords`` page as Kinesis writes it), column by column.

        Every entry an object with the same keys, each a member under its own name; each
        string member's values strings, each blob's strings, each timestamp's numbers within
        range. Such a page is converted a column at a time at C speed: every blob by the blob
        parser, each distinct timestamp once (the records of one put share theirs). None for
        any other page, or if a parser refuses a value: the walk then decides, and raises what
        botocore would.
        """
        kinds = {name: kind for name, key, kind in members if name == key}
        keys = _alike(entries, kinds.keys())
        if keys is None:
            return None
        columns = []
        for key in keys:
            column = self._column(kinds[key], list(map(itemgetter(key), entries)))
            if column is None:
                return None
            columns.append(column)
        return list(map(dict, map(zip, repeat(keys), zip(*columns, strict=True))))

    def _column(self, kind: str, values: list[Any]) -> list[Any] | None:
        """One member's values as the walk makes them; None if one is not plain."""
        types = set(map(type, values))
        if kind == "timestamp":
            return self._timestamps(values) if types <= {float, int} else None
        if types != {str}:
            return None  # a null, a number…: the walk drops or refuses it
        if kind == "blob":
            try:
                return list(map(self._blob_parser, values))
            except Exception:  # noqa: BLE001 - as above
                return None
        return values

    def _timestamps(self, numbers: list[float]) -> list[Any] | None:
        """Timestamps, each distinct one parsed once; None for one the walk must decide."""
        if max(map(abs, numbers)) >= _BIG:
            return None
        try:
            once = {value: self._timestamp_parser(value) for value in set(numbers)}
        except Exception:  # noqa: BLE001 - the walk raises it as botocore would
            return None
        return list(map(once.__getitem__, numbers))


def _alike(entries: list[Any], names: Any) -> list[str] | None:
    """The keys of ``entries`` if all are objects with the same keys, all in ``names``."""
    if not entries or set(map(type, entries)) != {dict}:
        return None
    keys = list(entries[0])
    # every entry has as many keys as there are in all of them: each has them all
    if set(map(len, entries)) != {len(keys)} or not set().union(*entries) <= names:
        return None
    return keys


def _all_text(members: list[tuple[str, str, str]], entries: list[Any]) -> bool:
    """Whether every entry is a dict of strings under the names of string members only.

    Such an entry is what botocore's walk makes of it (the same keys and values); checked
    at C speed, for a ``PutRecordBatch`` answer's 500 ``{"RecordId": ...}``.
    """
    if any(kind != "string" or name != key for name, key, kind in members):
        return False  # a GetRecords record: its blob and timestamp are converted one by one
    names = {name for name, _, _ in members}
    if not entries or set(map(type, entries)) != {dict}:
        return False
    if not set().union(*entries) <= names:
        return False
    return set(map(type, chain.from_iterable(map(dict.values, entries)))) <= {str}


class _FastParserFactory(_ResponseParserFactory):  # type: ignore[misc]
    """botocore's factory, handing out :class:`_FastJSONParser` for the JSON protocol."""

    def create_parser(self, protocol_name: str) -> Any:
        if protocol_name == "json":
            return _FastJSONParser(**self._defaults)
        return super().create_parser(protocol_name)


#: What botocore's validation accepts for a Firehose stream name, and a record's size.
_STREAM_NAME = re.compile(r"[a-zA-Z0-9_.-]{1,64}")
_MAX_RECORDS = 500
_MAX_DATA = 1_024_000
_base64: Callable[[bytes], bytes] = partial(b2a_base64, newline=False)
_pybase64: Any = None
try:  # the fast extra: pybase64's SIMD encoder, the same bytes ~3x faster than binascii's
    import pybase64 as _pybase64

    _base64 = _pybase64.b64encode
except ImportError:  # pragma: no cover - exercised in environments without the extra
    pass


def _blob(value: Any) -> bytes:
    """A blob member's bytes, as botocore's ``base64.b64decode`` gives them (or its error).

    With the ``fast`` extra, strict base64 — what AWS writes — is decoded by pybase64 (about
    twice as fast on a Kinesis record); anything it refuses (line breaks, stray characters,
    padding inside) goes to ``base64.b64decode``, which decides as botocore would.
    """
    if _pybase64 is not None:
        try:
            return _pybase64.b64decode(value, validate=True)  # type: ignore[no-any-return]
        except (ValueError, TypeError):  # binascii.Error is a ValueError
            pass
    return base64.b64decode(value)


def _put_record_batch_body(parameters: dict[str, Any]) -> bytes | None:
    """The body botocore writes for these ``PutRecordBatch`` parameters; None if not plain."""
    name, records = parameters.get("DeliveryStreamName"), parameters.get("Records")
    if len(parameters) != 2 or type(name) is not str or type(records) is not list:  # noqa: PLR2004
        return None
    if not 0 < len(records) <= _MAX_RECORDS or not _STREAM_NAME.fullmatch(name):
        return None
    # Every record a dict of one key, "Data", holding bytes within the limit: checked at C speed.
    if set(map(type, records)) != {dict} or set(map(len, records)) != {1}:
        return None
    datas = [record.get("Data") for record in records]
    if set(map(type, datas)) != {bytes} or max(map(len, datas)) > _MAX_DATA:
        return None
    pieces = list(map(_base64, datas))  # one join of them all: a ~1 MB body copied once
    pieces[0] = (
        b'{"DeliveryStreamName": "' + name.encode() + b'", "Records": [{"Data": "' + pieces[0]
    )
    pieces[-1] += b'"}]}'
    return b'"}, {"Data": "'.join(pieces)


class _FastSerializer:
    """Botocore's serialiser (validation included), writing plain batches in one join."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def serialize_to_request(self, parameters: Any, operation_model: Any) -> Any:
        """Botocore's request; a plain ``PutRecordBatch``'s body written here."""
        body = None
        if operation_model.name == "PutRecordBatch" and type(parameters) is dict:
            body = _put_record_batch_body(parameters)
        if body is None:
            return self._inner.serialize_to_request(parameters, operation_model)
        # botocore writes (and validates) the call with one empty record: its headers, its
        # method and path for this botocore version; the body is then the one written here.
        one = {"DeliveryStreamName": parameters["DeliveryStreamName"], "Records": [{"Data": b""}]}
        request = self._inner.serialize_to_request(one, operation_model)
        request["body"] = body
        return request

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class _FastRequests:
    """A Firehose client's base class, added on botocore's ``creating-client-class`` event.

    The client's serialiser becomes a :class:`_FastSerializer` around botocore's.
    """

    _serializer: Any

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._serializer = _FastSerializer(self._serializer)


def _add_fast_requests(base_classes: list[type], **_: Any) -> None:
    base_classes.insert(0, _FastRequests)


def fast_clients(botocore_session: Any) -> Any:
    """Make the clients of ``botocore_session`` read answers and write batches faster.

    The same results and the same bytes on the wire (see the module's text for what is done):
    timestamps come as UTC datetimes (:func:`parse_utc_timestamp`); ``GetRecords`` and
    ``PutRecordBatch`` answers are read in one pass; a Firehose client writes a
    ``PutRecordBatch`` body in one join. Clients built by streambridge (``from_settings``,
    the command line) do so already. For a client you inject, build it from such a session
    (it changes only that session's clients)::

        import boto3, botocore.session
        from streambridge import fast_clients

        session = boto3.Session(botocore_session=fast_clients(botocore.session.get_session()))
        importer = KinesisImporter(session.client("kinesis"), settings, sink=sink)

    Returns:
        ``botocore_session``, for chaining.
    """
    factory = _FastParserFactory()
    factory.set_parser_defaults(timestamp_parser=parse_utc_timestamp, blob_parser=_blob)
    botocore_session.register_component("response_parser_factory", factory)
    botocore_session.register(
        "creating-client-class.firehose", _add_fast_requests, unique_id="streambridge-fast"
    )
    return botocore_session
