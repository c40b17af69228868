"""Answers read and batches written faster by the clients streambridge builds (issue 19).

botocore turns every ``ApproximateArrivalTimestamp`` into a dateutil ``tzlocal()`` datetime
and walks every record shape by shape: most of the cost of a ``GetRecords`` answer. Clients
we build read timestamps as UTC datetimes of the same instant, and ``GetRecords`` and
``PutRecordBatch`` answers in one pass; the one-pass reading is compared with botocore's own
walk on generated answers, odd ones included. Their Firehose clients write a
``PutRecordBatch`` body in one join: compared with botocore's bytes on generated calls, and
what botocore refuses is refused the same way. A user's session can be made to do the same
(:func:`streambridge.fast_clients`).
"""

from __future__ import annotations

import base64
import json
from datetime import datetime, timezone
from typing import Any

import boto3
import botocore.session
import pytest
from botocore import parsers as botocore_parsers
from botocore import utils as botocore_utils
from hypothesis import given
from hypothesis import strategies as st

from streambridge import ImporterSettings, KinesisImporter, fast_clients
from streambridge._wire import _FastSerializer, parse_utc_timestamp
from streambridge.testing import LocalAWS

#: botocore's own parser (its stubs say str; it takes numbers too)
botocores: Any = botocore_utils.parse_timestamp


@pytest.mark.parametrize(
    "value",
    [
        1_700_000_000,
        1.7e9 + 0.987,
        "1700000000.5",
        "2026-12-07T10:00:00.123Z",
        "2026-12-07T10:00:00+02:00",
        "Mon, 07 Dec 2026 10:00:00 GMT",
        0,
    ],
)
def test_the_same_instant_as_botocore_in_utc(value: object) -> None:
    """Every form botocore reads gives the same instant, with UTC as its zone."""
    ours = parse_utc_timestamp(value)
    assert ours.tzinfo is timezone.utc
    assert ours == botocores(value)


def test_an_epoch_out_of_range_still_goes_through_botocore() -> None:
    """A value fromtimestamp refuses is botocore's to parse (or refuse) as before."""
    with pytest.raises((ValueError, OverflowError, OSError, RuntimeError)):
        botocores(10**20)
    with pytest.raises((ValueError, OverflowError, OSError, RuntimeError)):
        parse_utc_timestamp(10**20)


@pytest.mark.integration
def test_clients_built_from_settings_read_arrival_times_as_utc(aws: LocalAWS) -> None:
    """from_settings' client hands the converter UTC datetimes; an injected one tzlocal()."""
    aws.create_stream("times", shards=1)
    aws.put_records("times", [{"name": "e"}])
    settings = ImporterSettings(
        stream_name="times",
        event_key="name",
        start_position="TRIM_HORIZON",
        region=aws.region,
        access_key_id="testing",
        secret_access_key="testing",
    )
    ours = KinesisImporter.from_settings(settings, endpoint_url=aws.endpoint_url).client
    theirs = aws.client("kinesis")
    for client, utc in ((ours, True), (theirs, False)):
        shard = client.list_shards(StreamName="times")["Shards"][0]["ShardId"]
        iterator = client.get_shard_iterator(
            StreamName="times", ShardId=shard, ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        (record,) = client.get_records(ShardIterator=iterator)["Records"]
        arrival: datetime = record["ApproximateArrivalTimestamp"]
        assert (arrival.tzinfo is timezone.utc) is utc


def test_a_users_session_can_read_fast_too() -> None:
    """fast_clients() changes the session given, and only it."""
    session = boto3.Session(
        botocore_session=fast_clients(botocore.session.get_session()), region_name="us-east-1"
    )
    factory = session._session.get_component("response_parser_factory")
    parser = factory.create_parser("json")
    assert parser._timestamp_parser is parse_utc_timestamp
    other = botocore.session.get_session().get_component("response_parser_factory")
    assert other.create_parser("json")._timestamp_parser is not parse_utc_timestamp


# --------------------------------------------------------------------------- one pass = the walk

_SESSION = botocore.session.get_session()
_OUTPUT = _SESSION.get_service_model("kinesis").operation_model("GetRecords").output_shape


def _parsers() -> tuple[Any, Any]:
    """Botocore's JSON parser and ours, both reading timestamps as UTC."""
    theirs_factory = botocore_parsers.ResponseParserFactory()
    theirs_factory.set_parser_defaults(timestamp_parser=parse_utc_timestamp)
    ours_session = fast_clients(botocore.session.get_session())
    ours = ours_session.get_component("response_parser_factory").create_parser("json")
    return theirs_factory.create_parser("json"), ours


def _answer(body: bytes) -> dict[str, Any]:
    return {"status_code": 200, "headers": {"x-amzn-requestid": "r"}, "body": body}


scalars = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.text(max_size=6)
timestamps = st.floats(0, 4e9) | st.integers(0, 4_000_000_000) | st.none()
base64_texts = st.binary(max_size=20).map(lambda b: base64.b64encode(b).decode())
odd_base64 = st.text("ABYQab01+/=\n $-_é", max_size=12)  # padding inside, stray characters…
blobs = base64_texts | odd_base64 | st.none()
records = st.fixed_dictionaries(
    {
        "SequenceNumber": st.text(max_size=5) | st.none() | st.integers(),
        "ApproximateArrivalTimestamp": timestamps,
        "Data": blobs,
        "PartitionKey": st.text(max_size=5) | st.none(),
    },
    optional={"EncryptionType": st.just("KMS") | st.none(), "Unknown": scalars},
)
pages = st.fixed_dictionaries(
    {"Records": st.lists(records, max_size=5)},
    optional={
        "NextShardIterator": st.text(max_size=5) | st.none(),
        "MillisBehindLatest": st.integers(0, 2**70),
        "ChildShards": st.lists(
            st.fixed_dictionaries(
                {"ShardId": st.text(max_size=4), "ParentShards": st.lists(st.text(max_size=3))}
            ),
            max_size=2,
        ),
        "Extra": scalars,
    },
)


@given(pages)
def test_one_pass_reads_getrecords_as_botocores_walk(page: dict[str, Any]) -> None:
    """Generated answers (nulls, odd types and base64, big numbers): botocore's result or error."""
    theirs, ours = _read_by_both(json.dumps(page).encode(), _OUTPUT)
    assert theirs == ours


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"[1, 2]",
        b"null",
        b'{"Records": "not a list"}',
        b'{"Records": [1, "two", null]}',
        b'{"Records": [{"Data": "AAAA"}], "NextShardIterator": 5}',
        b"\xff\xfe",
        b'{"Records": [' + b"[" * 600 + b"]" * 600 + b"]}",  # deeper than our limit
    ],
)
def test_odd_bodies_are_read_as_botocore_reads_them(body: bytes) -> None:
    """What is not a plain answer goes to botocore's own parser: the same result or error."""
    theirs, ours = _read_by_both(body, _OUTPUT)
    assert theirs == ours


def _read_by_both(body: bytes, shape: Any) -> list[Any]:
    """What botocore's parser and ours make of ``body``: the result, or the error's type."""
    outcomes = []
    for parser in _parsers():
        try:
            outcomes.append(parser.parse(_answer(body), shape))
        except Exception as exc:  # noqa: BLE001, PERF203 - compared by the caller
            outcomes.append(type(exc))
    return outcomes


_PUT_OUTPUT = _SESSION.get_service_model("firehose").operation_model("PutRecordBatch").output_shape
put_entries = st.fixed_dictionaries(
    {},
    optional={
        "RecordId": st.text(max_size=8) | st.none() | st.integers(),
        "ErrorCode": st.text(max_size=5) | st.none(),
        "ErrorMessage": st.text(max_size=5) | st.none(),
        "Unknown": scalars,
    },
)
put_answers = st.fixed_dictionaries(
    {"RequestResponses": st.lists(put_entries | scalars, max_size=5) | scalars},
    optional={"FailedPutCount": st.integers(-1, 2**70) | scalars, "Encrypted": scalars},
)


@given(put_answers)
def test_one_pass_reads_putrecordbatch_as_botocores_walk(answer: dict[str, Any]) -> None:
    """PutRecordBatch answers (odd entries, big counts, wrong types): the same result or error."""
    theirs, ours = _read_by_both(json.dumps(answer).encode(), _PUT_OUTPUT)
    assert theirs == ours


# --------------------------------------------------------------------------- the batch written


def _firehose(session: Any) -> Any:
    return boto3.Session(botocore_session=session).client(
        "firehose",
        region_name="us-east-1",
        endpoint_url="http://127.0.0.1:9",
        aws_access_key_id="x",
        aws_secret_access_key="x",
    )


_SENT: dict[str, Any] = {}


def _captured(request: Any, **_: Any) -> Any:
    """A before-send hook: keep what would go on the wire, answer every record accepted."""
    from botocore.awsrequest import AWSResponse, HTTPHeaders  # noqa: PLC0415

    body = request.body
    _SENT["body"], _SENT["headers"] = body, dict(request.headers)
    _SENT["url"], _SENT["method"] = request.url, request.method
    count = json.loads(body).get("Records", [])
    answer = {"FailedPutCount": 0, "RequestResponses": [{"RecordId": "r"}] * len(count)}
    return AWSResponse(request.url, 200, HTTPHeaders(), _Raw(json.dumps(answer).encode()))


class _Raw:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self, **_: Any) -> Any:
        yield self.data


_VOLATILE = {"X-Amz-Date", "Authorization", "amz-sdk-invocation-id", "User-Agent"}


def _put(client: Any, params: dict[str, Any]) -> Any:
    """What ``client.put_record_batch(**params)`` writes, or the type of what it raises."""
    _SENT.clear()
    try:
        client.put_record_batch(**params)
    except Exception as exc:  # noqa: BLE001 - compared
        return type(exc), str(exc)
    headers = {k: v for k, v in _SENT["headers"].items() if k not in _VOLATILE}
    return _SENT["body"], headers, _SENT["url"], _SENT["method"]


@pytest.fixture(scope="module")
def firehoses() -> tuple[Any, Any]:
    """Botocore's client and one from a fast_clients session, both answered by _captured."""
    theirs = _firehose(botocore.session.get_session())
    ours = _firehose(fast_clients(botocore.session.get_session()))
    for client in (theirs, ours):
        client.meta.events.register("before-send.firehose.PutRecordBatch", _captured)
    return theirs, ours


def test_the_fast_client_writes_batches_itself(firehoses: tuple[Any, Any]) -> None:
    """The client of a fast_clients session wraps botocore's serialiser; botocore's does not."""
    theirs, ours = firehoses
    assert isinstance(ours._serializer, _FastSerializer)
    assert not isinstance(theirs._serializer, _FastSerializer)
    kinesis = boto3.Session(botocore_session=fast_clients(botocore.session.get_session()))
    other: Any = kinesis.client("kinesis", region_name="us-east-1")
    assert not isinstance(other._serializer, _FastSerializer)


names = st.text("abcXYZ019_.-", min_size=1, max_size=64)
datas = st.binary(max_size=300)


@given(names, st.lists(datas, min_size=1, max_size=30))
def test_a_plain_batch_is_written_as_botocore_writes_it(
    firehoses: tuple[Any, Any], name: str, records: list[bytes]
) -> None:
    """Byte for byte: the body, the headers, the URL and the method."""
    theirs, ours = firehoses
    params = {"DeliveryStreamName": name, "Records": [{"Data": data} for data in records]}
    mine = _put(ours, params)
    assert isinstance(mine[0], bytes)  # written, not refused
    assert mine == _put(theirs, params)


big = b"x" * 1_024_000


@pytest.mark.parametrize(
    "params",
    [
        {"DeliveryStreamName": "s", "Records": []},
        {"DeliveryStreamName": "s", "Records": [{"Data": b"a"}] * 501},
        {"DeliveryStreamName": "s", "Records": [{"Data": b"a"}] * 500},
        {"DeliveryStreamName": "s", "Records": [{"Data": big}]},
        {"DeliveryStreamName": "s", "Records": [{"Data": big + b"x"}]},
        {"DeliveryStreamName": "s", "Records": [{"Data": "text"}]},
        {"DeliveryStreamName": "s", "Records": [{"Data": bytearray(b"ab")}]},
        {"DeliveryStreamName": "s", "Records": [{"Data": 5}]},
        {"DeliveryStreamName": "s", "Records": [{"Data": b"a", "Extra": 1}]},
        {"DeliveryStreamName": "s", "Records": [{}]},
        {"DeliveryStreamName": "s", "Records": ({"Data": b"a"},)},
        {"DeliveryStreamName": "s", "Records": ["a"]},
        {"DeliveryStreamName": "", "Records": [{"Data": b"a"}]},
        {"DeliveryStreamName": "x" * 65, "Records": [{"Data": b"a"}]},
        {"DeliveryStreamName": "bad name", "Records": [{"Data": b"a"}]},
        {"DeliveryStreamName": 's"', "Records": [{"Data": b"a"}]},
        {"DeliveryStreamName": "s\n", "Records": [{"Data": b"a"}]},
        {"DeliveryStreamName": 5, "Records": [{"Data": b"a"}]},
        {"DeliveryStreamName": "s", "Records": [{"Data": b"a"}], "Unknown": 1},
        {"Records": [{"Data": b"a"}]},
        {"DeliveryStreamName": "s"},
    ],
)
def test_what_is_not_plain_is_botocores_to_write_or_refuse(
    firehoses: tuple[Any, Any], params: dict[str, Any]
) -> None:
    """Odd parameters: the same request, or the same error, as botocore's own client."""
    theirs, ours = firehoses
    assert _put(ours, params) == _put(theirs, params)


@pytest.mark.integration
def test_a_forwarder_from_settings_delivers_through_the_fast_client(aws: LocalAWS) -> None:
    """Over HTTP to the local AWS: the records written in one join arrive whole."""
    from streambridge import FirehoseForwarder, ForwarderSettings  # noqa: PLC0415

    aws.create_delivery_stream("fast")
    settings = ForwarderSettings(
        delivery_stream_name="fast",
        send_as_batch=False,
        region=aws.region,
        access_key_id="testing",
        secret_access_key="testing",
    )
    forwarder = FirehoseForwarder.from_settings(settings, endpoint_url=aws.endpoint_url)
    client: Any = forwarder.client
    assert isinstance(client._serializer, _FastSerializer)
    result = forwarder.send([b'{"n": %d}' % n for n in range(1200)])
    assert result.sent == 1200
    assert sorted(record["n"] for record in aws.delivered("fast")) == list(range(1200))


@given(st.binary(max_size=5000))
def test_the_records_base64_is_the_standard_librarys(data: bytes) -> None:
    """pybase64 (the fast extra) or binascii: the same bytes, no newline."""
    from binascii import b2a_base64  # noqa: PLC0415

    from streambridge._wire import _base64  # noqa: PLC0415

    assert _base64(data) == b2a_base64(data, newline=False)


@given(base64_texts | odd_base64 | st.binary(max_size=12))
def test_blobs_are_decoded_as_botocore_decodes_them(value: str | bytes) -> None:
    """pybase64 for strict base64, the standard library for the rest: botocore's bytes or error."""
    from streambridge._wire import _blob  # noqa: PLC0415

    outcomes: list[object] = []
    for decode in (base64.b64decode, _blob):
        try:
            outcomes.append(decode(value))
        except Exception as exc:  # noqa: BLE001, PERF203 - compared
            outcomes.append(type(exc))
    assert outcomes[0] == outcomes[1]


# Pages as Kinesis writes them (every record alike), now and then with one odd value: read a
# column at a time (``_columns``), or by the walk when a value is odd — botocore's result.
plain_records = st.fixed_dictionaries(
    {
        "SequenceNumber": st.text("0123456789", min_size=1, max_size=8),
        "ApproximateArrivalTimestamp": st.sampled_from([1.7e9, 1.7e9 + 0.25, 1_700_000_001]),
        "Data": base64_texts,
        "PartitionKey": st.text(max_size=5),
    }
)
odd_values = st.tuples(
    st.sampled_from(["SequenceNumber", "ApproximateArrivalTimestamp", "Data", "PartitionKey"]),
    scalars | timestamps | odd_base64 | st.just(2.0**64),
)


@given(
    st.lists(plain_records, min_size=1, max_size=6),
    st.none() | st.tuples(st.integers(0, 5), odd_values),
    st.booleans(),
)
def test_alike_records_are_read_a_column_at_a_time_as_the_walk_reads_them(
    page: list[dict[str, Any]], odd: Any, encrypted: bool
) -> None:
    """The same result or error as botocore's walk; the plain pages do take the column path."""
    if encrypted:
        page = [{**record, "EncryptionType": "KMS"} for record in page]
    if odd is not None:
        where, (key, value) = odd
        page[where % len(page)][key] = value
    body = json.dumps({"Records": page, "NextShardIterator": "i"}).encode()
    theirs, ours = _read_by_both(body, _OUTPUT)
    assert theirs == ours
    if odd is None:
        parser = _parsers()[1]
        member = _OUTPUT.members["Records"].member  # type: ignore[union-attr]
        members = [
            (name, shape.serialization.get("name", name), shape.type_name)
            for name, shape in member.members.items()
        ]
        assert ours["Records"] == parser._columns(members, page)


def test_records_of_one_put_share_one_timestamp_conversion() -> None:
    """Each distinct timestamp is converted once (the records of one put share theirs)."""
    page = [
        {"SequenceNumber": str(n), "ApproximateArrivalTimestamp": 1.7e9, "Data": "AA=="}
        for n in range(3)
    ]
    records = _read_by_both(json.dumps({"Records": page}).encode(), _OUTPUT)[1]["Records"]
    assert 1 == len({id(record["ApproximateArrivalTimestamp"]) for record in records})
