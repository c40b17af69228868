"""Answers read faster by the clients streambridge builds (issue 19), with the same results.

botocore turns every ``ApproximateArrivalTimestamp`` into a dateutil ``tzlocal()`` datetime
and walks every record shape by shape: most of the cost of a ``GetRecords`` answer. Clients
we build read timestamps as UTC datetimes of the same instant, and ``GetRecords`` in one pass;
the one-pass reading is compared with botocore's own walk on generated answers, odd ones
included. A user's session can be made to do the same (:func:`streambridge.fast_parsing`).
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

from streambridge import ImporterSettings, KinesisImporter, fast_parsing
from streambridge._parsing import parse_utc_timestamp
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
    """fast_parsing() changes the session given, and only it."""
    session = boto3.Session(
        botocore_session=fast_parsing(botocore.session.get_session()), region_name="us-east-1"
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
    ours_session = fast_parsing(botocore.session.get_session())
    ours = ours_session.get_component("response_parser_factory").create_parser("json")
    return theirs_factory.create_parser("json"), ours


def _answer(body: bytes) -> dict[str, Any]:
    return {"status_code": 200, "headers": {"x-amzn-requestid": "r"}, "body": body}


scalars = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.text(max_size=6)
timestamps = st.floats(0, 4e9) | st.integers(0, 4_000_000_000) | st.none()
blobs = st.binary(max_size=20).map(lambda b: base64.b64encode(b).decode()) | st.none()
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
    """Generated answers (nulls, unknown keys, odd types, big numbers): the same result."""
    theirs, ours = _parsers()
    body = json.dumps(page).encode()
    assert theirs.parse(_answer(body), _OUTPUT) == ours.parse(_answer(body), _OUTPUT)


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
    theirs, ours = _parsers()
    outcomes = []
    for parser in (theirs, ours):
        try:
            outcomes.append(parser.parse(_answer(body), _OUTPUT))
        except Exception as exc:  # noqa: BLE001, PERF203 - compared below
            outcomes.append(type(exc))
    assert outcomes[0] == outcomes[1]
