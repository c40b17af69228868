"""Unit tests of the shared base's helpers: the tally, the JSON codec, botocore at the edge."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError
from hypothesis import given
from hypothesis import strategies as st

from streambridge import (
    AccessDeniedError,
    DeliveryError,
    FailedRecord,
    ForwardResult,
    ImportResult,
    MalformedAnswerError,
    RejectedBatch,
    StreamNotFoundError,
    _json,
)
from streambridge._aws import CallError, attempt, fatal_error
from streambridge._json import documents, encode_record_stdlib, loads
from streambridge._settings import did_you_mean, normalise
from streambridge._tally import Tally
from streambridge.errors import EncodingError
from tests.strategies import json_values

REJECTED = RejectedBatch(0, "not an object")
FAILED = FailedRecord(b"x", "ThrottlingException", "m", 10)


def test_a_tally_freezes_into_its_result() -> None:
    """Counts, lists and mappings are read from the result class; freeze builds it."""
    tally = Tally(ForwardResult)
    tally.add("sent", 3)
    tally.add("batches")
    tally.append("rejected", REJECTED)
    tally.extend("failed", [FAILED, FAILED])
    tally.maps["dropped_reasons"]["bad"] = 2
    assert 3 == tally["sent"]
    result = tally.freeze(dropped_events=2)
    assert (3, 1, (REJECTED,), (FAILED, FAILED)) == (
        result.sent,
        result.batches,
        result.rejected,
        result.failed,
    )
    assert ({"bad": 2}, 2, 0) == (result.dropped_reasons, result.dropped_events, result.retries)
    with pytest.raises(KeyError):
        tally.add("sen")
    assert ImportResult() == Tally(ImportResult).freeze()


def test_documents_and_loads() -> None:
    """Concatenated documents in order; errors say which document; big integers stay exact."""
    assert [{"a": 1}, [2], "x", 3] == documents('{"a":1}[2]\n"x"\n 3 ')
    assert [] == documents("  \n")
    with pytest.raises(ValueError, match=r"not JSON \(document 2\)"):
        documents('{"a": 1} {')
    with pytest.raises(ValueError, match="NaN is not JSON"):
        documents("NaN")
    assert 18446744073709551617 == loads(b'{"big": 18446744073709551617}')["big"]


EDGES = [-(2**63), 2**64 - 1, 10**18, -(10**18), 10**19, -(10**19), 10**20, 2**70]


@given(
    st.lists(
        st.one_of(
            st.integers(),
            st.sampled_from(EDGES).flatmap(lambda edge: st.integers(edge - 3, edge + 3)),
            st.floats(allow_nan=False, allow_infinity=False),
            st.text(alphabet="0123456789-.e", max_size=30),
        ),
        max_size=6,
    )
)
def test_loads_reads_every_number_as_the_standard_library_does(values: list[Any]) -> None:
    """Integers of any size exact, long digit runs in strings too: what json.loads reads.

    orjson keeps -2**63 .. 2**64 - 1 exact (mParticle's 64-bit ids: 19 digits), and the text
    goes to the standard library only when an integer is outside that range.
    """
    text = json.dumps(values).encode()
    read = loads(text)
    assert json.loads(text) == read
    assert [type(v) for v in json.loads(text)] == [type(v) for v in read]


def test_loads_keeps_the_integers_at_the_edges_of_orjson_exact() -> None:
    """Each integer within 3 of an edge, alone and inside a document, read exactly."""
    for edge in EDGES:
        for number in range(edge - 3, edge + 4):
            for text in (str(number), f'{{"mpid": {number}, "s": "{number}"}}'):
                assert json.loads(text) == loads(text.encode()), text
                assert type(json.loads(text)) is type(loads(text.encode()))
                if text[0] == "{":
                    assert type(loads(text.encode())["mpid"]) is int


def test_setting_names() -> None:
    """Names match ignoring case, underscores and spaces; a close name is suggested."""
    assert "send as batch" == normalise("  Send_as   BATCH ")
    assert "; did you mean 'Send as Batch'?" == did_you_mean("Send as Btch", ["Send as Batch"])
    assert "" == did_you_mean("zzz", ["Send as Batch"])


def client_error(code: str, status: int) -> ClientError:
    """A ClientError as botocore raises it for an error answer."""
    response: Any = {
        "Error": {"Code": code, "Message": "m"},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return ClientError(response, "PutRecordBatch")


def raising(exc: Exception) -> object:
    """A client method that raises ``exc``."""

    def call(**_: object) -> object:
        raise exc

    return call


@pytest.mark.parametrize(
    ("exc", "code", "retryable"),
    [
        (client_error("ThrottlingException", 400), "ThrottlingException", True),
        (client_error("Weird", 503), "Weird", True),
        (client_error("AccessDeniedException", 400), "AccessDeniedException", False),
        (EndpointConnectionError(endpoint_url="http://127.0.0.1:9"), "ConnectionError", True),
        (NoCredentialsError(), "NoCredentialsError", False),
        (AttributeError("'str' object has no attribute 'get'"), "MalformedAnswer", True),
    ],
)
def test_attempt_maps_every_failure_once(exc: Exception, code: str, retryable: bool) -> None:
    """Error answers, connections, other botocore errors and parser crashes become CallErrors."""
    failure = attempt(raising(exc), "PutRecordBatch", lambda r: r)  # type: ignore[arg-type]
    assert isinstance(failure, CallError)
    assert (code, retryable, "PutRecordBatch") == (
        failure.code,
        failure.retryable,
        failure.operation,
    )
    assert failure.connection == (code == "ConnectionError")
    assert failure.malformed == (code == "MalformedAnswer")


def test_attempt_reads_the_answer() -> None:
    """The reader's value comes back; a reader that does not believe the answer is malformed."""
    assert 3 == attempt(lambda **kw: {"n": kw["x"]}, "Op", lambda r: r["n"], x=3)

    def unbelieving(_: object) -> object:
        raise MalformedAnswerError.because("Op", "has no N")

    failure = attempt(lambda **_: {}, "Op", unbelieving)
    assert isinstance(failure, CallError)
    assert failure.malformed
    assert "Op answered 200 but has no N" in failure.message


@pytest.mark.parametrize(
    ("code", "kind", "text"),
    [
        (
            "ResourceNotFoundException",
            StreamNotFoundError,
            "was not found in region r1 for these credentials: fix it (m)",
        ),
        ("AccessDeniedException", AccessDeniedError, "allow 'kinesis:GetRecords' (hint)"),
        ("InvalidArgumentException", DeliveryError, "which retrying cannot fix"),
    ],
)
def test_fatal_errors_say_what_to_do(code: str, kind: type[Exception], text: str) -> None:
    """Not found, access denied, anything else: each its own type and advice."""
    failure = CallError("GetRecords", code, "m", 400, retryable=False, error=ValueError())
    error = fatal_error(
        failure,
        resource="Kinesis stream 's'",
        region="r1",
        not_found_hint="fix it",
        permission="kinesis:GetRecords",
        permission_hint=" (hint)",
    )
    assert type(error) is kind
    assert text in str(error)
    assert code == error.error_code


STDLIB = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), allow_nan=False, check_circular=False
)


@given(json_values, st.sampled_from(["", " ", "\n", " \t\r\n"]))
def test_the_standard_library_path_reads_and_writes_as_json_does(value: Any, space: str) -> None:
    """Without orjson: the C encoder and scanner called at once give json's own text and values.

    Space around a document, and text that is not JSON, go through ``JSONDecoder.decode``:
    the same values, the same errors.
    """
    text = STDLIB.encode(value)
    assert text.encode() == encode_record_stdlib(value)
    padded = (space + text + space).encode()
    assert json.loads(padded) == _json._stdlib_loads(padded.decode())
    with pytest.raises(json.JSONDecodeError) as theirs:
        json.loads(text + " x")
    with pytest.raises(json.JSONDecodeError) as ours:
        _json._stdlib_loads(text + " x")
    assert (ours.value.msg, ours.value.pos) == (theirs.value.msg, theirs.value.pos)


def test_the_standard_library_path_refuses_what_json_refuses() -> None:
    """NaN, a non-string key, another object: EncodingError; NaN text: ValueError."""
    for bad in ({"a": float("nan")}, {1j: 1}, {"a": object()}):
        with pytest.raises(EncodingError):
            encode_record_stdlib(bad)
    with pytest.raises(ValueError, match="NaN is not JSON"):
        _json._stdlib_loads('{"a": NaN}')
    with pytest.raises(json.JSONDecodeError, match="Expecting value"):
        _json._stdlib_loads("")
