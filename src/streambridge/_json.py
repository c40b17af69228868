"""The JSON codec both halves share: orjson when installed, the standard library otherwise.

Pure: no I/O. Rules both halves rely on:

* Encoding is compact UTF-8 JSON. orjson (the ``fast`` extra) is used when installed; the
  values it refuses (integers beyond 64 bits) go to the standard library, so integers of any
  size stay exact. With orjson a float NaN or infinity is written as ``null``; the standard
  library refuses it with :class:`~streambridge.errors.EncodingError`. A lone surrogate, a
  value nested too deeply, or an object of another type is an ``EncodingError``.
* Decoding keeps integers of any size exact (orjson reads those from -2**63 to 2**64 - 1; a
  text with another goes to the standard library, which does not turn it into a float) and
  refuses ``NaN`` / ``Infinity``.
"""

from __future__ import annotations

import contextlib
import json
import json.encoder
import json.scanner
from collections.abc import Callable
from datetime import datetime
from typing import Any

from streambridge.errors import EncodingError

_orjson: Any
try:  # the `fast` extra
    import orjson as _orjson
except ImportError:  # pragma: no cover - exercised in environments without the extra
    _orjson = None

__all__ = [
    "HAS_ORJSON",
    "Encoder",
    "documents",
    "encode_record",
    "encode_record_stdlib",
    "json_kind",
    "loads",
]

#: Whether orjson (the ``fast`` extra) is installed and used by :func:`encode_record`.
HAS_ORJSON = _orjson is not None

#: A function turning a JSON-like value into bytes (the forwarder's ``encoder``).
Encoder = Callable[[Any], bytes]


def _isoformat(value: object) -> str:
    """A datetime as orjson writes it (its ``isoformat()``); anything else cannot be JSON."""
    if isinstance(value, datetime):
        return value.isoformat()
    msg = f"Object of type {type(value).__name__} is not JSON serializable"
    raise TypeError(msg)


#: Datetimes are written as orjson writes them, RFC 3339 (``isoformat()``), on both paths.
_stdlib_encoder = json.JSONEncoder(
    ensure_ascii=False,
    separators=(",", ":"),
    allow_nan=False,
    check_circular=False,
    default=_isoformat,
)
# The C encoder JSONEncoder.encode builds anew on every call (json.encoder.iterencode), built
# once with the same arguments: the same text and the same errors without the Python around
# it, twice as fast on an event. None where the interpreter has no C encoder of that shape.
_c_encoder: Any = None
_make_encoder: Any = getattr(json.encoder, "c_make_encoder", None)
with contextlib.suppress(TypeError):
    _c_encoder = _make_encoder and _make_encoder(
        *(None, _isoformat, json.encoder.encode_basestring, None),  # markers: check_circular
        *(":", ",", False, False, False),  # separators, sort_keys, skipkeys, allow_nan
    )


def _stdlib_dumps(obj: Any) -> str:
    """``obj`` as compact JSON text, by the standard library's C encoder."""
    if _c_encoder is not None:
        return "".join(_c_encoder(obj, 0))
    return _stdlib_encoder.encode(obj)  # pragma: no cover - an interpreter without it


#: Deepest nesting a document may have, decoded or encoded, on every interpreter alike.
#: Python's own codec stops near its recursion limit (about 900 levels on 3.11, far deeper on
#: 3.12), orjson at 1,024 (decoding) and 255 (encoding): one limit of ours, below Python's on
#: every version, treats a record alike everywhere.
MAX_DEPTH = 512


def _within_depth(value: Any, brackets: int, tree: Any = None) -> Any:
    """``value``, or RecursionError when it (or ``tree``) nests deeper than :data:`MAX_DEPTH`.

    ``brackets`` (its text's ``[`` and ``{``, counted in C) settles almost every document at
    once: fewer opening brackets than the limit cannot nest deeper. Only the rest is walked:
    ``tree`` when given (the value that was encoded), else ``value`` (the one decoded).
    """
    if brackets <= MAX_DEPTH:
        return value
    stack: list[tuple[Any, int]] = [(value if tree is None else tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            msg = f"nested more than {MAX_DEPTH} levels deep"
            raise RecursionError(msg)
        children = node.values() if isinstance(node, dict) else node
        stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))
    return value


def encode_record_stdlib(obj: Any) -> bytes:
    """Encode ``obj`` as compact UTF-8 JSON with the standard library.

    Raises:
        EncodingError: ``obj`` holds something JSON cannot represent (NaN, infinity, a
            non-string key that is not a number, an object of another type).
    """
    try:
        data = _stdlib_dumps(obj).encode("utf-8")
        return _within_depth(data, data.count(b"[") + data.count(b"{"), obj)  # type: ignore[no-any-return]
    except UnicodeEncodeError:  # "\ud800" is valid JSON text, but no UTF-8 encoder takes it
        raise EncodingError("holds a lone surrogate, which UTF-8 cannot encode") from None
    except RecursionError:
        msg = f"value is nested too deeply to encode as JSON (more than {MAX_DEPTH} levels)"
        raise EncodingError(msg) from None
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


# orjson keeps integers from -2**63 to 2**64 - 1 exact and turns any other into a float. A run
# of 19+ digits (fewer cannot leave that range) is found at C speed (mapping digits to "0" and
# the rest to " ", then looking for 19 zeros); only then are the long runs read, and a text
# with one outside the range goes to the standard library, which keeps it exact. mParticle's
# ids (MPIDs) are 64-bit: 19 digits, within the range.
_DIGITS_TO_ZERO = bytes(48 if 48 <= i <= 57 else 32 for i in range(256))  # noqa: PLR2004
_NINETEEN_DIGITS = b"0" * 19
_ORJSON_EXACT = (-(2**63), 2**64 - 1)
_MOST_DIGITS = 20  # in 2**64 - 1 = 18446744073709551615


def _long_runs_fit(data: bytes, zeros: bytes) -> bool:
    """Whether orjson decodes every long integer of ``data`` exactly.

    ``zeros`` is ``data`` with digits as ``0`` (:data:`_DIGITS_TO_ZERO`): each run of 19 or
    more is taken for an integer, with the ``-`` before it (one in a string or a fraction is
    not, but then the standard library merely decides a text orjson could have read).
    """
    low, high = _ORJSON_EXACT
    start = zeros.find(_NINETEEN_DIGITS)
    while start != -1:
        end = start + len(_NINETEEN_DIGITS)
        while end < len(zeros) and zeros[end] == 48:  # noqa: PLR2004 - "0"
            end += 1
        if end - start > _MOST_DIGITS:
            return False
        first = start - 1 if start and data[start - 1] == 45 else start  # noqa: PLR2004 - "-"
        if not low <= int(data[first:end]) <= high:
            return False
        start = zeros.find(_NINETEEN_DIGITS, end)
    return True


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_stdlib_decoder = json.JSONDecoder(parse_constant=_reject_constant)
# The decoder's own C scanner, called at once: JSONDecoder.decode adds two regular-expression
# matches around it (leading and trailing space). A text it does not read whole from its first
# character (space around it, an error) goes to ``decode``, which decides and says why.
_make_scanner: Any = getattr(json.scanner, "c_make_scanner", None)
_scan: Any = _make_scanner(_stdlib_decoder) if _make_scanner is not None else None


def _stdlib_loads(text: str) -> Any:
    if _scan is not None:
        try:
            value, end = _scan(text, 0)
        except StopIteration:
            pass
        else:
            if end == len(text):
                return value
    return _stdlib_decoder.decode(text)


def loads(data: bytes) -> Any:
    """Decode one JSON document from UTF-8 bytes; integers of any size stay exact.

    Raises:
        UnicodeDecodeError: The bytes are not UTF-8.
        ValueError: They are not one JSON document (``NaN`` and ``Infinity`` included).
        RecursionError: The document is nested deeper than :data:`MAX_DEPTH` (or than the
            decoder goes).
    """
    short = len(data) <= MAX_DEPTH  # fewer bytes than the limit cannot nest deeper than it
    if _orjson is not None:
        zeros = data.translate(_DIGITS_TO_ZERO)
        if _NINETEEN_DIGITS not in zeros or _long_runs_fit(data, zeros):
            value = _orjson.loads(data)
            return value if short else _within_depth(value, data.count(b"[") + data.count(b"{"))
    value = _stdlib_loads(data.decode("utf-8"))
    return value if short else _within_depth(value, data.count(b"[") + data.count(b"{"))


def documents(text: str) -> list[Any]:
    """Every JSON document of ``text``, in order: newline-delimited or simply concatenated.

    Raises:
        ValueError: Some text is not JSON; the message says which document (1-based) when
            documents came before it.
        RecursionError: A document is nested deeper than :data:`MAX_DEPTH`.
    """
    values: list[Any] = []
    position = 0
    end = len(text)
    while True:
        while position < end and text[position] in " \t\r\n":
            position += 1
        if position >= end:
            return values
        start = position
        try:
            value, position = _stdlib_decoder.raw_decode(text, position)
        except ValueError as exc:  # JSONDecodeError, or NaN / Infinity refused
            where = f" (document {len(values) + 1})" if values else ""
            raise ValueError(f"not JSON{where}: {exc}") from None
        brackets = text.count("[", start, position) + text.count("{", start, position)
        values.append(_within_depth(value, brackets))


_KINDS: tuple[tuple[type | tuple[type, ...], str], ...] = (
    (type(None), "null"),
    (bool, "a boolean"),  # before int: a bool is an int
    ((int, float), "a number"),
    (str, "a string"),
    ((list, tuple), "an array"),
    (dict, "an object"),
)


def json_kind(value: object) -> str:
    """Name a JSON value's kind for messages, without echoing (possibly huge) content."""
    for types, name in _KINDS:
        if isinstance(value, types):
            return name
    return f"a {type(value).__name__}"
