"""botocore's answers, read faster on the clients streambridge builds: the same results.

botocore reads every answer with the standard library's JSON and walks it shape by shape;
each record of a ``GetRecords`` answer costs a dozen calls, and each timestamp becomes a
``dateutil`` local-time datetime. :func:`fast_parsing` gives a botocore session a parser
factory whose JSON parser

* reads timestamps with :func:`parse_utc_timestamp` (UTC datetimes of the same instant);
* reads a ``GetRecords`` answer's body with orjson (the ``fast`` extra) and its records in
  one pass: each member converted by botocore's own blob and timestamp parsers, in the
  shape's order, ``null`` members left out, unknown keys dropped — exactly what botocore's
  walk gives (``tests/test_parsing.py`` compares them on generated answers). Anything else —
  another operation, a body that is not one JSON object, a record that is not an object, a
  shard's end (``ChildShards``), a number orjson may not have kept exact — goes to botocore's
  own parser.

The session's other clients are not changed by anything here unless built from it.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from botocore import parsers as _parsers

from streambridge._json import _orjson

__all__ = ["fast_parsing", "parse_utc_timestamp"]

_FAST_OUTPUTS = frozenset({"GetRecordsOutput"})
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
    """botocore's JSON parser, with a one-pass reading of ``GetRecords`` answers."""

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
            if name == "Records" and type(value) is list:
                final[name] = self._records(member.member, value)
            else:
                final[name] = self._parse_shape(member, value)
        return final

    def _records(self, shape: Any, records: list[Any]) -> list[Any]:
        """Each record as botocore's walk makes it, without the walk."""
        members = [
            (name, member.serialization.get("name", name), member.type_name)
            for name, member in shape.members.items()
        ]
        if any(kind not in ("string", "blob", "timestamp") for _, _, kind in members):
            raise _NotPlainError
        blob, timestamp = self._blob_parser, self._timestamp_parser
        out = []
        for record in records:
            if type(record) is not dict:
                raise _NotPlainError
            item = {}
            for name, key, kind in members:
                value = record.get(key)
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


class _FastParserFactory(_ResponseParserFactory):  # type: ignore[misc]
    """botocore's factory, handing out :class:`_FastJSONParser` for the JSON protocol."""

    def create_parser(self, protocol_name: str) -> Any:
        if protocol_name == "json":
            return _FastJSONParser(**self._defaults)
        return super().create_parser(protocol_name)


def fast_parsing(botocore_session: Any) -> Any:
    """Make the clients of ``botocore_session`` read answers faster, with the same results.

    Timestamps come as UTC datetimes (:func:`parse_utc_timestamp`), and ``GetRecords`` answers
    are read in one pass. Clients built by streambridge (``from_settings``, the command line)
    do so already. For a client you inject, build it from such a session (it changes only that
    session's clients)::

        import boto3, botocore.session
        from streambridge import fast_parsing

        session = boto3.Session(botocore_session=fast_parsing(botocore.session.get_session()))
        importer = KinesisImporter(session.client("kinesis"), settings, sink=sink)

    Returns:
        ``botocore_session``, for chaining.
    """
    factory = _FastParserFactory()
    factory.set_parser_defaults(timestamp_parser=parse_utc_timestamp)
    botocore_session.register_component("response_parser_factory", factory)
    return botocore_session
