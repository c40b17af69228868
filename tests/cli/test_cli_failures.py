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
from tests.cli.test_cli import _env, run  # noqa: F401 - the env fixture
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


# --------------------------------------------------------------------------- settings that do nothing


@pytest.mark.parametrize(
    ("exclusion", "said"),
    [
        ("Ip Adress", "did you mean 'IP Address'?"),
        ("Device ID", "is neither a label nor a top-level field"),
        ("IP Address; Device Name", "separate them with ','"),
    ],
)
def test_a_metadata_exclusion_that_names_nothing_is_refused(
    tmp_path: Path, exclusion: str, said: str
) -> None:
    """A typo used to forward the IP address anyway, silently: a privacy failure."""
    settings = tmp_path / "mparticle.json"
    settings.write_text(
        json.dumps({"Delivery Stream Name": "events", "Metadata Field Exclusion": exclusion})
    )
    batches = tmp_path / "batches.jsonl"
    batches.write_text(json.dumps(load_sample(SAMPLE)) + "\n")
    done = offline("forward", "--settings", str(settings), str(batches))
    assert done.returncode == 2, done.stderr
    assert said in done.stderr
    assert "Traceback" not in done.stderr


def test_import_where_every_record_is_skipped_exits_1_and_says_why(aws: LocalAWS) -> None:
    """It used to exit 0: a wrong --event-key looked like success."""
    aws.create_stream("clicks")
    aws.put_records("clicks", [{"name": "a"}, {"name": "b"}], key="k")
    done = finished(
        aws, "import", "--stream", "clicks", "--event-key", "wrong.key", "--start",
        "TRIM_HORIZON", "--until-caught-up", "--output", os.devnull,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "every record read (2) was skipped" in done.stderr


def test_import_from_latest_that_reads_nothing_says_so(aws: LocalAWS) -> None:
    """LATEST with --until-caught-up imported nothing, silently, from a stream full of records."""
    aws.create_stream("clicks")
    aws.put_records("clicks", [{"name": "a"}], key="k")
    done = finished(
        aws, "import", "--stream", "clicks", "--event-key", "name", "--until-caught-up",
        "--output", os.devnull,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "started at LATEST: records already in the stream are not read" in done.stderr
    assert "--start TRIM_HORIZON" in done.stderr


@pytest.mark.parametrize(
    "config",
    [
        {"kinesisStreamName": "clicks", "eventKey": "properties.eventName"},
        {"Kinesis Stream Name": "clicks", "Posthog event key": "properties.eventName"},
    ],
    ids=["the-apps-keys", "the-names-its-page-shows"],
)
def test_import_takes_the_posthog_apps_configuration_as_settings(
    aws: LocalAWS, tmp_path: Path, config: dict[str, str]
) -> None:
    """``import --settings FILE``, by the app's keys or by the names its page shows."""
    aws.create_stream("clicks")
    aws.put_records("clicks", [{"properties": {"eventName": "Signed Up"}}], key="k")
    path = tmp_path / "posthog-app.json"
    path.write_text(json.dumps(config))
    out = tmp_path / "events.jsonl"
    done = finished(
        aws, "import", "--settings", str(path), "--start", "TRIM_HORIZON", "--until-caught-up",
        "--output", str(out),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(out.read_text())["event"] == "Signed Up"


def test_import_config_names_a_missing_setting_both_ways(aws: LocalAWS, tmp_path: Path) -> None:
    """Issue 22: the app's key and the name its page shows, so either writer finds it."""
    path = tmp_path / "posthog-app.json"
    path.write_text(json.dumps({"Posthog event key": "properties.eventName"}))
    missing = finished(aws, "import", "--config", str(path), "--output", str(tmp_path / "o"))
    assert missing.returncode == 2
    assert "no kinesisStreamName ('Kinesis Stream Name'): pass --stream" in missing.stderr


def test_a_resumed_import_appends_to_its_output(aws: LocalAWS, tmp_path: Path) -> None:
    """--output with --checkpoints: the second run adds its events; the first run's stay."""
    aws.create_stream("clicks")
    aws.put_records("clicks", [{"name": "first"}], key="k")
    out, db = tmp_path / "events.jsonl", tmp_path / "positions.db"
    argv = ["import", "--stream", "clicks", "--event-key", "name", "--start", "TRIM_HORIZON"]
    argv += ["--until-caught-up", "--checkpoints", str(db), "--output", str(out)]
    assert finished(aws, *argv).returncode == 0
    aws.put_records("clicks", [{"name": "second"}], key="k")
    assert finished(aws, *argv).returncode == 0
    assert [json.loads(line)["event"] for line in out.read_text().splitlines()] == [
        "first",
        "second",
    ]


# --------------------------------------------------------------------------- the same, in process
# (so that coverage sees the paths the subprocess tests above prove)


def test_in_process_reading_of_every_input_shape(
    aws: LocalAWS, env: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Lines with bad bytes, a broken first line, one document, an array: each read right."""
    aws.create_delivery_stream("events")
    batch = json.dumps(load_sample(SAMPLE))
    shapes = {
        "bad.jsonl": (batch + "\n").encode() + b"\xc3\x28\n" + (batch + "\n").encode(),
        "broken.jsonl": ('{"cut": \n\n' + batch + "\nnot json\n").encode() + b"\xff\n",
        "one.json": json.dumps(load_sample(SAMPLE), indent=2).encode(),
        "array.json": b"\xef\xbb\xbf" + json.dumps([load_sample(SAMPLE)] * 2).encode(),
    }
    sent = {}
    for name, data in shapes.items():
        path = tmp_path / name
        path.write_bytes(data)
        code, out, err = run(capsys, "forward", "--stream", "events", str(path), *env)
        sent[name] = (code, out.split(" record(s)")[0], err)
    assert sent["bad.jsonl"][:2] == (1, "sent 2")
    assert "line 2: not UTF-8 (byte 0xc3 at column 1)" in sent["bad.jsonl"][2]
    assert sent["broken.jsonl"][:2] == (1, "sent 1")
    assert "line 4: not JSON" in sent["broken.jsonl"][2]
    assert "line 5: not UTF-8" in sent["broken.jsonl"][2]
    assert sent["one.json"][:2] == (0, "sent 1")
    assert sent["array.json"][:2] == (0, "sent 2")
    bad_array = tmp_path / "bad-array.json"
    bad_array.write_bytes(b'[{"events": "\xff"}]')
    code, _, err = run(capsys, "forward", "--stream", "events", str(bad_array), *env)
    assert code == 2
    assert "is a JSON array that is not UTF-8 text" in err


def test_in_process_runs_that_never_reach_aws_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Both commands against a dead endpoint: exit 3 within the budget, everything read kept."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    dead = ["--endpoint-url", DEAD, "--region", "us-east-1", "--retry-budget", "1"]
    path = tmp_path / "batches.jsonl"
    path.write_text((json.dumps(load_sample(SAMPLE)) + "\n") * 3)
    letters = tmp_path / "dead.jsonl"
    argv = ["forward", "--stream", "events", "--dead-letter", str(letters), str(path)]
    code, _, err = run(capsys, *argv, *dead)
    assert code == 3
    assert "could not reach delivery stream 'events'" in err
    assert len(letters.read_text().splitlines()) == 3
    code, _, err = run(capsys, "import", "--stream", "s", "--event-key", "e", *dead)
    assert code == 3
    assert "could not reach Kinesis stream 's'" in err
    code, _, err = run(capsys, "import", "--stream", "s", "--event-key", "e", *dead[:-1], "0")
    assert code == 2
    assert "--retry-budget must be more than 0 seconds" in err


def test_in_process_import_summaries(
    aws: LocalAWS, env: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """All skipped: exit 1; LATEST with nothing read: the note; a bad checkpoints path: 2."""
    aws.create_stream("clicks")
    aws.put_records("clicks", [{"name": "a"}], key="k")
    base = ["import", "--stream", "clicks", "--until-caught-up", "--output", os.devnull, *env]
    code, _, err = run(capsys, *base, "--event-key", "nope", "--start", "TRIM_HORIZON")
    assert code == 1
    assert "every record read (1) was skipped" in err
    code, _, err = run(capsys, *base, "--event-key", "name")
    assert code == 0
    assert "started at LATEST" in err
    code, _, err = run(capsys, *base, "--event-key", "name", "--checkpoints", str(tmp_path))
    assert code == 2
    assert "cannot open the checkpoints file" in err


def test_import_into_a_pipe_that_closes_ends_cleanly(aws: LocalAWS, tmp_path: Path) -> None:
    """``import … | head -1``: it used to retry the sink for ever on BrokenPipeError."""
    aws.create_stream("clicks")
    aws.put_records("clicks", [{"name": f"e{n}"} for n in range(3)], key="k")
    db = tmp_path / "positions.db"
    argv = ["import", "--stream", "clicks", "--event-key", "name", "--start", "TRIM_HORIZON"]
    argv += ["--checkpoints", str(db)]  # tails: only the closed pipe can end it
    head = subprocess.Popen(  # noqa: S603 - our own command, its output read and closed
        command(*argv),
        env={**os.environ, **aws.environment()},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert head.stdout is not None
    assert head.stderr is not None
    first = head.stdout.readline()
    head.stdout.close()  # what `head -1` does; the next write finds the pipe closed
    aws.put_records("clicks", [{"name": "e3"}, {"name": "e4"}], key="k")
    code = head.wait(timeout=60)
    err = head.stderr.read()
    head.stderr.close()
    assert json.loads(first)["event"] == "e0"
    assert code == 0, err
    assert "Traceback" not in err
    assert "output closed; stopping" in err  # seen idle (poll), or by the next write
    # Only e0 was read: e1 and e2, left in the pipe, are not counted written, so their page is
    # not checkpointed, and the next run reads it again (e0 twice: at least once).
    out = tmp_path / "again.jsonl"
    again = finished(aws, *argv, "--until-caught-up", "--output", str(out))
    assert again.returncode == 0, again.stderr
    events = [json.loads(line)["event"] for line in out.read_text().splitlines()]
    assert events == ["e0", "e1", "e2", "e3", "e4"]


def test_quiet_silences_the_summaries_but_not_the_errors(aws: LocalAWS, tmp_path: Path) -> None:
    """--quiet used to hide only the progress line."""
    aws.create_delivery_stream("events")
    aws.create_stream("clicks")
    path = tmp_path / "batches.jsonl"
    path.write_bytes(json.dumps(load_sample(SAMPLE)).encode() + b"\n\xff\n")
    forward = finished(aws, "forward", "--stream", "events", "--quiet", str(path))
    assert forward.returncode == 1
    assert forward.stdout == ""
    assert "line 2: not UTF-8" in forward.stderr  # what went wrong is still said
    imported = finished(
        aws, "import", "--stream", "clicks", "--event-key", "e", "--until-caught-up", "--quiet",
        "--output", os.devnull,
    )  # fmt: skip
    assert imported.returncode == 0
    assert "imported" not in imported.stderr


def test_check_fills_the_account_id_into_the_kinesis_policy(aws: LocalAWS) -> None:
    """It used to print an ``{account-id}`` placeholder; STS knows the account."""
    aws.create_stream("clicks")
    done = finished(aws, "check", "--kinesis-stream", "clicks")
    assert done.returncode == 0, done.stderr
    assert "{account-id}" not in done.stdout
    assert f"arn:aws:kinesis:{aws.region}:123456789012:stream/clicks" in done.stdout


# --------------------------------------------------------------------------- a local AWS


def test_streambridge_local_serves_until_interrupted_and_the_other_commands_use_it(
    tmp_path: Path,
) -> None:
    """``streambridge local`` prints the exports; forward and import work with only those."""
    import signal  # noqa: PLC0415

    server = subprocess.Popen(  # noqa: S603 - our own command, on loopback
        command("local", "--firehose-stream", "events", "--kinesis-stream", "clicks"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        exports: dict[str, str] = {}
        for line in server.stdout:
            if line.startswith("export "):
                name, value = line[len("export ") :].strip().split("=", 1)
                exports[name] = value
            if line.startswith("# delivery stream"):
                break
        assert exports["AWS_ENDPOINT_URL"].startswith("http://127.0.0.1:")
        env = {**os.environ, **exports}
        batches = tmp_path / "batches.jsonl"
        batches.write_text(json.dumps(load_sample(SAMPLE)) + "\n")
        forward = subprocess.run(  # noqa: S603
            command("forward", "--stream", "events", str(batches)),
            env=env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert forward.returncode == 0, forward.stderr
        imported = subprocess.run(  # noqa: S603
            command("import", "--stream", "clicks", "--event-key", "e", "--until-caught-up"),
            env=env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert imported.returncode == 0, imported.stderr
        server.send_signal(signal.SIGINT)
        assert server.wait(timeout=30) == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        for pipe in (server.stdout, server.stderr):
            if pipe is not None:
                pipe.close()


def test_delivered_reads_the_delivery_streams_own_prefix(aws: LocalAWS) -> None:
    """A stream whose S3 prefix is not ``{name}/`` used to read as delivering nothing."""
    s3 = aws.client("s3")
    s3.create_bucket(Bucket="elsewhere")
    aws.client("firehose").create_delivery_stream(
        DeliveryStreamName="custom",
        DeliveryStreamType="DirectPut",
        ExtendedS3DestinationConfiguration={
            "RoleARN": "arn:aws:iam::123456789012:role/firehose",
            "BucketARN": "arn:aws:s3:::elsewhere",
            "Prefix": "raw/events/",
        },
    )
    aws.client("firehose").put_record(DeliveryStreamName="custom", Record={"Data": b'{"n": 1}\n'})
    assert aws.delivered("custom") == [{"n": 1}]


@pytest.mark.parametrize("command_name", ["demo", "local"])
def test_without_the_local_extra_one_line_names_it(command_name: str) -> None:
    """It used to be a raw ModuleNotFoundError traceback."""
    script = (
        "import sys; sys.modules['moto'] = None; sys.modules['moto.server'] = None\n"
        "from streambridge.cli import main\n"
        f"sys.exit(main([{command_name!r}]))\n"
    )
    done = subprocess.run(  # noqa: S603 - our own code
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "pip install 'streambridge[local]'" in done.stderr


def test_max_records_means_exactly_that_many_and_the_next_run_goes_on(
    aws: LocalAWS, tmp_path: Path
) -> None:
    """--max-records 10 used to import everything a read returned (up to 10,000 a shard)."""
    aws.create_stream("clicks", shards=2)
    aws.put_records("clicks", [{"name": f"e{n}"} for n in range(25)])  # spread over shards
    db, first, rest = tmp_path / "positions.db", tmp_path / "first.jsonl", tmp_path / "rest.jsonl"
    argv = ["import", "--stream", "clicks", "--event-key", "name", "--start", "TRIM_HORIZON"]
    argv += ["--checkpoints", str(db)]
    done = finished(aws, *argv, "--max-records", "10", "--output", str(first))
    assert done.returncode == 0, done.stderr
    assert "stopped: max_records" in done.stderr
    taken = [json.loads(line)["event"] for line in first.read_text().splitlines()]
    assert len(taken) == 10
    again = finished(aws, *argv, "--until-caught-up", "--output", str(rest))
    assert again.returncode == 0, again.stderr
    others = [json.loads(line)["event"] for line in rest.read_text().splitlines()]
    assert sorted(taken + others) == sorted(f"e{n}" for n in range(25))  # none twice, none lost


def test_in_process_max_records(
    aws: LocalAWS, env: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same, in process: three records of seven, then the other four."""
    aws.create_stream("clicks", shards=3)
    aws.put_records("clicks", [{"name": f"e{n}"} for n in range(7)])
    out, db = tmp_path / "events.jsonl", tmp_path / "positions.db"
    argv = ["import", "--stream", "clicks", "--event-key", "name", "--start", "TRIM_HORIZON"]
    argv += ["--checkpoints", str(db), "--output", str(out), *env]
    code, _, err = run(capsys, *argv, "--max-records", "3")
    assert code == 0, err
    assert len(out.read_text().splitlines()) == 3
    code, _, err = run(capsys, *argv, "--until-caught-up")
    assert code == 0, err
    assert sorted(json.loads(line)["event"] for line in out.read_text().splitlines()) == [
        f"e{n}" for n in range(7)
    ]


def test_forward_from_a_quiet_pipe_sends_what_it_read_without_waiting_for_the_end(
    aws: LocalAWS,
) -> None:
    """``forward -`` used to hold records until 500 / 4 MB / end of input."""
    import time  # noqa: PLC0415

    aws.create_delivery_stream("events")
    process = subprocess.Popen(  # noqa: S603 - our own command
        command("forward", "--stream", "events", "--flush-interval", "0.5", "-"),
        env={**os.environ, **aws.environment()},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert process.stdin is not None
        process.stdin.write(json.dumps(load_sample(SAMPLE)).encode() + b"\n")
        process.stdin.flush()  # and the pipe stays open
        deadline = time.monotonic() + 30
        while not aws.delivered("events") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(aws.delivered("events")) == 1  # delivered while the input is still open
        assert process.poll() is None
        last = json.dumps(load_sample(SAMPLE)).encode() + b"\n"
        out, err = process.communicate(input=last, timeout=60)  # then the end of the input
        assert process.returncode == 0, err
        assert out.startswith(b"sent 2 record(s)")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_rejected_batches_are_reported_by_input_line(
    aws: LocalAWS, env: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Blank and unreadable lines before a rejected batch do not shift its line number."""
    aws.create_delivery_stream("events")
    good = json.dumps(load_sample(SAMPLE))
    bad = json.dumps({"events": "not a list"})
    path = tmp_path / "batches.jsonl"
    path.write_text(f"{good}\n\n{bad}\nnot json\n{good}\n\n\n{bad}\n")
    code, _, err = run(capsys, "forward", "--stream", "events", str(path), *env)
    assert code == 1
    assert "rejected batch at line 3: " in err
    assert "rejected batch at line 8: " in err
    array = tmp_path / "batches.json"
    array.write_text(f"[{good}, {bad}]")
    code, _, err = run(capsys, "forward", "--stream", "events", str(array), *env)
    assert code == 1
    assert "rejected batch 1 (0-based): " in err


def test_in_process_local_prints_the_exports(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``streambridge local`` in process, stopped at once (as by Ctrl-C)."""
    import threading  # noqa: PLC0415

    from streambridge.cli import local  # noqa: PLC0415

    class Stopped(threading.Event):
        def wait(self, timeout: float | None = None) -> bool:
            """As if Ctrl-C came at once."""
            return True

    monkeypatch.setattr(local, "_stop_event", Stopped)
    code, out, err = run(capsys, "local", "--kinesis-stream", "views", "--shards", "2")
    assert code == 0
    assert "export AWS_ENDPOINT_URL=http://127.0.0.1:" in out
    assert "Kinesis stream 'views' (2 shard(s))" in out
    assert "local AWS stopped" in err
    code, _, err = run(capsys, "local", "--shards", "0")
    assert code == 2
    assert "--shards must be at least 1" in err


def test_in_process_live_input_flushes_when_quiet_and_reads_an_array() -> None:
    """The pipe reader: lines as they come, FLUSH after a quiet spell, an array read whole."""
    import threading  # noqa: PLC0415

    from streambridge.cli._common import Stop  # noqa: PLC0415
    from streambridge.cli._input import Unreadable, read_batches  # noqa: PLC0415
    from streambridge.cli._progress import Progress  # noqa: PLC0415
    from streambridge.forwarder import FLUSH  # noqa: PLC0415

    def through_a_pipe(chunks: list[bytes], pause: float) -> list[object]:
        read_end, write_end = os.pipe()

        def write() -> None:
            with os.fdopen(write_end, "wb") as pipe:
                for chunk in chunks:
                    pipe.write(chunk)
                    pipe.flush()
                    threading.Event().wait(pause)

        writer = threading.Thread(target=write)
        writer.start()
        unreadable = Unreadable()
        with os.fdopen(read_end, "rb") as source:
            got = list(
                read_batches(source, "-", unreadable, Progress(enabled=False), Stop(), None, 0.05)
            )
        writer.join()
        return got

    got = through_a_pipe([b'{"a": 1}\n{"b"', b": 2}\n\n", b'{"c": 3}'], pause=0.2)
    assert [g for g in got if g is not FLUSH] == [{"a": 1}, {"b": 2}, {"c": 3}]
    assert FLUSH in got
    assert got[-1] == {"c": 3}  # the last line needs no newline
    assert through_a_pipe([b'[{"a": 1},\n', b'{"b": 2}]\n'], pause=0.0) == [{"a": 1}, {"b": 2}]


@pytest.mark.parametrize("option", ["--kinesis-stream", "--firehose-stream"])
def test_check_exits_3_for_a_missing_stream_of_either_kind(aws: LocalAWS, option: str) -> None:
    """One rule: AWS refusing (here: no such stream) is exit 3, for Kinesis as for Firehose."""
    done = finished(aws, "check", option, "missing")
    assert done.returncode == 3, done.stderr
    assert "missing" in done.stderr


def test_lines_decode_as_the_standard_library_reads_them(tmp_path: Path) -> None:
    """The fast decoder (orjson) gives what ``json.loads`` gave, odd lines included (issue 19).

    Integers past 64 bits stay exact, ``NaN`` is taken as before, a BOM on the first line is
    skipped, a lone surrogate survives, a line nested deeper than orjson goes is the
    standard library's — and what is not JSON or not UTF-8 is noted as before.
    """
    from streambridge.cli._common import Stop  # noqa: PLC0415
    from streambridge.cli._input import Unreadable, read_batches  # noqa: PLC0415
    from streambridge.cli._progress import Progress  # noqa: PLC0415

    lines = [
        b'\xef\xbb\xbf{"first": true}',
        b'{"big": 123456789012345678901234567890, "neg": -18446744073709551617}',
        b'{"nan": NaN, "inf": -Infinity}',
        b'{"s": "\\ud800 lone", "e": "caf\xc3\xa9", "f": 1.5e300}',
        b'{"deep": ' + b"[" * 600 + b"]" * 600 + b"}",
        b'{"dup": 1, "dup": 2}',
        b"{not json}",
        b'{"bad": "\xff"}',
        b"[1, 2]",
    ]
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    unreadable = Unreadable()
    with path.open("rb") as source:
        got = list(read_batches(source, "in", unreadable, Progress(enabled=False), Stop()))
    expected = [
        json.loads(line.decode("utf-8-sig")) for n, line in enumerate(lines) if n not in (6, 7)
    ]
    assert json.dumps(got) == json.dumps(expected)  # NaN != NaN: compared as text
    assert got[1] == {"big": 123456789012345678901234567890, "neg": -18446744073709551617}
    assert [note.split(":")[0] for note in unreadable] == ["line 7", "line 8"]
    assert "not UTF-8" in unreadable[1]
