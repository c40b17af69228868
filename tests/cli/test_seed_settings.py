"""The settings the seeds' users bring are honoured: their IAM keys, backfills, personless events."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from streambridge import ImporterSettings, RecordConverter
from streambridge.importer.events import to_event
from streambridge.testing import LocalAWS, local_posthog
from tests.cli.test_cli import run

pytestmark = pytest.mark.integration

FIREHOSE_ONLY = {
    "Version": "2012-10-17",
    # moto matches actions against "*" only (moto issue 9581)
    "Statement": [{"Effect": "Allow", "Action": ["firehose:PutRecord"], "Resource": "*"}],
}
KINESIS_ONLY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": ["kinesis:DescribeStream", "kinesis:GetShardIterator", "kinesis:GetRecords"],
            "Resource": "*",
        }
    ],
}


@pytest.fixture(name="environment")
def _environment(aws: LocalAWS, monkeypatch: pytest.MonkeyPatch) -> None:
    """The environment's credentials are the local AWS's test keys (refused under IAM)."""
    for name, value in aws.environment().items():
        monkeypatch.setenv(name, value)


def test_forward_signs_with_the_keys_of_the_mparticle_settings_file(
    aws: LocalAWS,
    environment: None,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    ios: dict[str, Any],
) -> None:
    """Access Key ID / Secret Access Key in --settings win over the environment's keys."""
    aws.create_delivery_stream("events")
    user = aws.iam_user("mparticle", FIREHOSE_ONLY)
    settings = tmp_path / "mparticle.json"
    settings.write_text(
        json.dumps(
            {
                "Delivery Stream Name": "events",
                "Access Key ID": user.access_key_id,
                "Secret Access Key": user.secret_access_key,
            }
        )
    )
    batches = tmp_path / "in.jsonl"
    batches.write_text(json.dumps(ios) + "\n")
    with aws.enforcing_iam():
        code, out, err = run(capsys, "forward", "--settings", str(settings), str(batches))
    assert 0 == code, err
    assert "sent 1 record(s)" in out
    assert 1 == len(aws.delivered("events"))
    assert user.secret_access_key not in out + err
    code, _, err = run(
        capsys, "forward", "--settings", str(settings), "--profile", "other", str(batches)
    )
    assert 2 == code
    assert "the file holds access keys and --profile names a profile" in err


def test_import_reads_the_posthog_app_config_and_its_iam_keys(
    aws: LocalAWS, environment: None, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """--config takes the app's own keys; iamAccessKeyId / iamSecretAccessKey sign the calls."""
    aws.create_stream("clicks", shards=1)
    aws.put_records("clicks", [{"properties": {"eventName": f"e{n}"}} for n in range(3)])
    user = aws.iam_user("posthog", KINESIS_ONLY)
    config = tmp_path / "posthog.json"
    config.write_text(
        json.dumps(
            {
                "kinesisStreamName": "clicks",
                "iamAccessKeyId": user.access_key_id,
                "iamSecretAccessKey": user.secret_access_key,
                "awsRegion": aws.region,
                "eventKey": "properties.eventName",
                "additionalPropertyMappings": "",
            }
        )
    )
    output = tmp_path / "events.jsonl"
    with aws.enforcing_iam():
        code, _, err = run(
            capsys,
            "import",
            "--config",
            str(config),
            "--start",
            "TRIM_HORIZON",
            "--until-caught-up",
            "--output",
            str(output),
        )
    assert 0 == code, err
    assert ["e0", "e1", "e2"] == sorted(
        json.loads(x)["event"] for x in output.read_text().splitlines()
    )
    code, _, err = run(capsys, "import", "--event-key", "e")
    assert 2 == code
    assert (
        "no kinesisStreamName ('Kinesis Stream Name'): pass --stream or put it in --config" in err
    )


def test_backfills_are_historical_and_personless_on_request(
    aws: LocalAWS, environment: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """--historical sets PostHog's historical_migration; --personless marks unmapped events."""
    aws.create_stream("clicks", shards=1)
    aws.put_records("clicks", [{"name": "old", "n": n} for n in range(3)])
    with local_posthog() as posthog:
        code, _, err = run(
            capsys,
            "import",
            "--stream",
            "clicks",
            "--event-key",
            "name",
            "--start",
            "TRIM_HORIZON",
            "--until-caught-up",
            "--posthog-host",
            posthog.url,
            "--posthog-key",
            "phc_test",
            "--historical",
            "--personless",
        )
    assert 0 == code, err
    assert posthog.historical
    assert all(posthog.historical)
    assert 3 == len(posthog.events)
    assert all(e["properties"]["$process_person_profile"] is False for e in posthog.events)


def test_both_are_off_by_default_and_a_mapped_distinct_id_keeps_its_person() -> None:
    """Personless only for events that fall back to the default distinct_id."""
    arrival = datetime(2026, 1, 1, tzinfo=timezone.utc)
    common: dict[str, Any] = {
        "event_key": "name",
        "arrival": arrival,
        "uuid": "u",
        "default_distinct_id": "AWS Kinesis",
    }
    mappings = ImporterSettings(
        stream_name="s", event_key="name", additional_property_mappings="user:distinct_id"
    ).additional_property_mappings
    plain = to_event({"name": "x"}, mappings=(), **common)
    assert "$process_person_profile" not in plain.properties
    personless = to_event({"name": "x"}, mappings=(), personless=True, **common)
    assert {"$process_person_profile": False} == dict(personless.properties)
    mapped = to_event({"name": "x", "user": "u1"}, mappings=mappings, personless=True, **common)
    assert ("u1", {}) == (mapped.distinct_id, dict(mapped.properties))
    assert not ImporterSettings(stream_name="s", event_key="name").personless
    converter = RecordConverter(
        ImporterSettings(stream_name="s", event_key="name", personless=True)
    )
    events, _ = converter.convert("shard", [{"Data": b'{"name": "x"}', "SequenceNumber": "1"}])
    assert {"$process_person_profile": False} == dict(events[0].properties)
