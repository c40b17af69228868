"""The command line when things go wrong (issue 13): each case in a subprocess, loopback only."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from streambridge.testing import LocalAWS
from tests.cli.test_cli_reliability import command, finished
from tests.conftest import load_sample

pytestmark = pytest.mark.integration

DEAD = "http://127.0.0.1:9"  # nothing listens there
SAMPLE = "ios_lifecycle_screens_custom_commerce.json"


def offline(*argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run `streambridge` against an endpoint nothing listens on."""
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "x",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": DEAD,
    }
    return subprocess.run(  # noqa: S603 - our own command
        command(*argv), env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


# --------------------------------------------------------------------------- input a user has


def test_a_line_that_is_not_utf8_is_rejected_by_number_and_the_rest_goes_on(
    aws: LocalAWS, tmp_path: Path
) -> None:
    """One bad byte used to abort the whole file (exit 2), with 175 records neither sent nor told."""
    aws.create_delivery_stream("events")
    batch = json.dumps(load_sample(SAMPLE)).encode()
    path = tmp_path / "batches.jsonl"
    path.write_bytes(batch + b"\n" + b'{"bad": "\xff"}\n' + batch + b"\n")
    done = finished(aws, "forward", "--stream", "events", str(path))
    assert done.returncode == 1, done.stderr
    assert "line 2: not UTF-8 (byte 0xff at column 10)" in done.stderr
    assert "unreadable 1" in done.stdout
    assert done.stdout.startswith("sent 2 record(s)")  # Send as Batch: one record per batch


def test_one_pretty_printed_batch_is_one_batch(aws: LocalAWS, tmp_path: Path) -> None:
    """The format of every sample we ship: one JSON object over many lines."""
    aws.create_delivery_stream("events")
    path = tmp_path / "batch.json"
    path.write_text(json.dumps(load_sample(SAMPLE), indent=2))
    done = finished(aws, "forward", "--stream", "events", str(path))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("sent 1 record(s)")
    assert "unreadable 0" in done.stdout
    assert "rejected 0" in done.stdout


def test_json_lines_whose_first_line_is_broken_are_still_read_line_by_line(
    aws: LocalAWS, tmp_path: Path
) -> None:
    """A first line that opens an object and never closes it is not taken for a document."""
    aws.create_delivery_stream("events")
    batch = json.dumps(load_sample(SAMPLE))
    path = tmp_path / "batches.jsonl"
    path.write_text('{"cut short": \n' + batch + "\n" + batch + "\n")
    done = finished(aws, "forward", "--stream", "events", str(path))
    assert done.returncode == 1, done.stderr
    assert done.stdout.startswith("sent 2 record(s)")
    assert "line 1: not JSON" in done.stderr


def test_version(tmp_path: Path) -> None:
    """``streambridge --version`` prints the installed version."""
    from streambridge import __version__  # noqa: PLC0415

    done = subprocess.run(
        [sys.executable, "-m", "streambridge", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0
    assert done.stdout.strip() == f"streambridge {__version__}"


def test_a_checkpoints_path_that_cannot_be_opened_is_one_line_not_a_traceback(
    tmp_path: Path,
) -> None:
    """The CLI promises no tracebacks: a bad --checkpoints path is a usage error, exit 2."""
    done = offline(
        "import", "--stream", "s", "--event-key", "e", "--checkpoints", "/nonexistent/dir/x.db"
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "cannot open the checkpoints file '/nonexistent/dir/x.db'" in done.stderr


# --------------------------------------------------------------------------- runs that must end


def test_import_that_never_reaches_aws_fails_after_its_budget(tmp_path: Path) -> None:
    """It used to poll forever ("keeping the last listing" when there was none) and exit 0."""
    done = offline(
        "import", "--stream", "s", "--event-key", "e", "--until-caught-up", "--retry-budget", "3"
    )
    assert done.returncode == 3, done.stderr
    assert "could not reach Kinesis stream 's'" in done.stderr
    assert "keeping the last listing" not in done.stderr


def test_forward_to_a_dead_endpoint_gives_up_and_reports_everything_unsent(
    tmp_path: Path,
) -> None:
    """It used to retry every call for ~15 s, one call after another: 20 minutes to fail."""
    path = tmp_path / "batches.jsonl"
    batch = json.dumps(load_sample(SAMPLE))
    path.write_text((batch + "\n") * 2000)
    letters = tmp_path / "dead.jsonl"
    done = offline(
        "forward", "--stream", "events", "--retry-budget", "2", "--dead-letter", str(letters),
        str(path),
    )  # fmt: skip
    assert done.returncode == 3, done.stderr
    assert "could not reach delivery stream 'events'" in done.stderr
    found = re.search(
        r"the input was read up to line (\d+), what follows was not read", done.stderr
    )
    assert found is not None, done.stderr
    read = int(found.group(1))  # one batch a line, one record a batch: every one read is kept
    assert 0 < read <= 2000
    assert len(letters.read_text().splitlines()) == read
