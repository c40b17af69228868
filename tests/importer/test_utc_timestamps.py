"""Timestamps read as UTC by the clients streambridge builds (issue 19: botocore's tzlocal()).

botocore turns every ``ApproximateArrivalTimestamp`` into a dateutil ``tzlocal()`` datetime,
more than half of the cost of parsing a ``GetRecords`` answer. Clients we build read them as
UTC datetimes of the same instant; a user's session can be made to do the same.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import boto3
import botocore.session
import pytest
from botocore import utils as botocore_utils

from streambridge import ImporterSettings, KinesisImporter, utc_timestamps
from streambridge._aws import parse_utc_timestamp
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


def test_a_users_session_can_read_utc_too() -> None:
    """utc_timestamps() changes the session given, and only it."""
    session = boto3.Session(
        botocore_session=utc_timestamps(botocore.session.get_session()), region_name="us-east-1"
    )
    factory = session._session.get_component("response_parser_factory")
    parser = factory.create_parser("json")
    assert parser._timestamp_parser is parse_utc_timestamp
    other = botocore.session.get_session().get_component("response_parser_factory")
    assert other.create_parser("json")._timestamp_parser is not parse_utc_timestamp
