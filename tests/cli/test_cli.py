"""The streambridge command, end to end against the embedded local AWS."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from streambridge.cli import main
from streambridge.testing import LocalAWS, local_posthog
from tests.conftest import SAMPLE_NAMES, load_checkpoints, load_sample

pytestmark = pytest.mark.integration


@pytest.fixture(name="env")
def _env(aws: LocalAWS, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Test credentials in the environment; the AWS options every command gets."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    return ["--endpoint-url", aws.endpoint_url, "--region", aws.region]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """main(argv) -> (exit code, stdout, stderr); never a traceback."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def jsonl(path: Path, items: list[Any]) -> Path:
    """Write items as JSON lines."""
    path.write_text("".join(json.dumps(i) + "\n" for i in items), encoding="utf-8")
    return path


# --------------------------------------------------------------------------- demo


def test_demo(capsys: pytest.CaptureFixture[str]) -> None:
    """`streambridge demo` runs both halves and reads back exactly what it sent."""
    code, out, err = run(capsys, "demo")
    assert 0 == code
    assert "127.0.0.1" in out
    assert "sent 5 records" in out
    assert "read back from S3: 5 records, 52 events" in out
    assert "imported 4 PostHog events from 5 records" in out
    assert "skipped: no event name at 'properties.eventName'" in out
    assert out.rstrip().endswith("demo OK")
    assert "" == err


def test_module_entry_point_and_bad_arguments() -> None:
    """`python -m streambridge` is the command; bad arguments: usage on stderr, exit 2."""
    done = subprocess.run(
        [sys.executable, "-m", "streambridge", "nope"], capture_output=True, text=True, check=False
    )
    assert 2 == done.returncode
    assert "invalid choice" in done.stderr
    assert "Traceback" not in done.stderr


# --------------------------------------------------------------------------- forward


def test_forward_json_lines(
    aws: LocalAWS, env: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """JSON lines in, records delivered; bad lines and non-batches reported, exit 1."""
    aws.create_delivery_stream("events")
    samples = [load_sample(n) for n in SAMPLE_NAMES]
    path = jsonl(tmp_path / "in.jsonl", samples)
    with path.open("a", encoding="utf-8") as f:
        f.write("{not json\n\n[1, 2]\n")
    code, out, err = run(capsys, "forward", "--stream", "events", *env, str(path))
    assert 1 == code
    assert out.startswith("sent 5 record(s) in 1 call(s) (0 retries), ")
    assert "(each record rounded up to 5 KB: " in out
    assert "; failed 0; skipped 0; rejected 1; unreadable 1" in out
    assert "line 6: not JSON" in err
    assert "batch is not a JSON object (got an array)" in err
    assert 5 == len(aws.delivered("events"))


def test_forward_json_array_from_stdin_with_settings(
    aws: LocalAWS,
    env: list[str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A JSON array on stdin with an mParticle settings file: one record per event, exit 0."""
    aws.create_delivery_stream("events")
    settings = tmp_path / "mparticle.json"
    settings.write_text(json.dumps({"Delivery Stream Name": "events", "Send as Batch": "False"}))
    monkeypatch.setattr(
        sys,
        "stdin",
        io.TextIOWrapper(
            io.BytesIO(
                json.dumps([load_sample("ios_lifecycle_screens_custom_commerce.json")]).encode()
            )
        ),
    )
    code, out, _ = run(capsys, "forward", "--settings", str(settings), "--newline", *env)
    assert 0 == code
    assert out.startswith("sent 13 record(s)")
    (body,) = aws.delivered_objects("events")
    assert 13 == body.count(b"\n")


def test_forward_failed_records_file(
    aws: LocalAWS, env: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Records that cannot be sent are written to --failed-out; exit 1."""
    aws.create_delivery_stream("events")
    giant = {
        "events": [{"event_type": "custom_event", "data": {"pad": "x" * 1_100_000}}],
        "mpid": 1,
    }
    path = jsonl(tmp_path / "in.jsonl", [giant, load_sample("s2s_eventless_attribute_sync.json")])
    failed = tmp_path / "failed.jsonl"
    code, out, _ = run(
        capsys, "forward", "--stream", "events", "--failed-out", str(failed), *env, str(path)
    )
    assert 1 == code
    assert "sent 1 record(s)" in out
    (line,) = failed.read_text().splitlines()
    record = json.loads(line)
    assert ("RecordTooLarge", 0, 1) == (
        record["error_code"],
        record["attempts"],
        record["record"]["mpid"],
    )


@pytest.mark.parametrize(
    ("args", "message", "code"),
    [
        (["forward", "--stream", "events", "/no/such/file"], "cannot read '/no/such/file'", 2),
        (["forward", "/dev/null"], "no delivery stream", 2),
        (["forward", "--stream", "bad name!", "/dev/null"], "delivery_stream_name", 2),
        (["forward", "--stream", "missing", "IN"], "was not found", 3),
        (
            ["forward", "--settings", "SETTINGS", "--stream", "events", "/dev/null"],
            "unknown setting 'Send as Bach'",
            2,
        ),
        (
            ["forward", "--settings", "/no/such.json", "--stream", "events"],
            "cannot read settings file",
            2,
        ),
        (["forward", "--stream", "events", "ARRAY"], "starts with '[' but is not a JSON array", 2),
        (
            ["import", "--stream", "s", "--event-key", "e", "--start", "yesterday"],
            "start_position",
            2,
        ),
        (
            ["import", "--stream", "s", "--event-key", "e", "--mappings", "a:b:c"],
            "more than one ':'",
            2,
        ),
        (
            ["import", "--stream", "s", "--event-key", "e", "--posthog-key", "k"],
            "needs --posthog-host",
            2,
        ),
        (["import", "--stream", "s", "--event-key", "e", "--max-records", "0"], "--max-records", 2),
        (
            ["import", "--stream", "missing", "--event-key", "e", "--until-caught-up"],
            "was not found",
            3,
        ),
        (["check"], "name something to check", 2),
        (["check", "--kinesis-stream", "missing"], "was not found", 3),  # an AWS refusal
        (["check", "--firehose-stream", "missing"], "was not found", 3),
    ],
)
def test_bad_input_is_one_line_and_a_non_zero_exit(
    args: list[str],
    message: str,
    code: int,
    aws: LocalAWS,
    env: list[str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Bad arguments, files and streams: one clear line on stderr, the documented exit code."""
    aws.create_delivery_stream("events")
    (tmp_path / "settings.json").write_text(json.dumps({"Send as Bach": True}))
    (tmp_path / "array.json").write_text("[{]")
    (tmp_path / "in.jsonl").write_text(json.dumps(load_sample("s2s_eventless_attribute_sync.json")))
    replace = {
        "SETTINGS": str(tmp_path / "settings.json"),
        "ARRAY": str(tmp_path / "array.json"),
        "IN": str(tmp_path / "in.jsonl"),
    }
    argv = [replace.get(a, a) for a in args]
    got, _, err = run(capsys, *argv[:1], *env, *argv[1:])
    assert code == got
    assert message in err
    assert err.startswith("streambridge: error: ")


def test_no_region_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without any region, the command says how to give one."""
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    code, _, err = run(capsys, "check", "--kinesis-stream", "s")
    assert 2 == code
    assert "no AWS region" in err


# --------------------------------------------------------------------------- import


def test_import_with_checkpoints(
    aws: LocalAWS, env: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Events as JSON lines; a second run on the same checkpoints imports only what is new."""
    aws.create_stream("clicks", shards=2)
    aws.put_records("clicks", [{"p": {"name": f"e{n}", "user": f"u{n}"}} for n in range(6)])
    out_file, db = tmp_path / "events.jsonl", tmp_path / "state.db"
    args = [
        "import",
        "--stream",
        "clicks",
        "--event-key",
        "p.name",
        "--mappings",
        "p.user:distinct_id",
        "--start",
        "TRIM_HORIZON",
        "--checkpoints",
        str(db),
        "--until-caught-up",
        "--output",
        str(out_file),
        *env,
    ]
    code, _, err = run(capsys, *args)
    assert 0 == code
    assert "imported 6 event(s)" in err
    assert f"checkpoints in {db}" in err
    events = [json.loads(line) for line in out_file.read_text().splitlines()]
    assert {f"u{n}" for n in range(6)} == {e["distinct_id"] for e in events}
    assert {"event", "distinct_id", "properties", "timestamp", "uuid"} == set(events[0])
    aws.put_records("clicks", [{"p": {"name": "late", "user": "u9"}}])
    code, _, err = run(capsys, *args)
    assert (0, "imported 1 event(s)") == (code, err[err.index("imported") :][:19])
    assert 2 == len(load_checkpoints(db, "clicks"))


def test_import_to_stdout_with_max_records(
    aws: LocalAWS, env: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """--max-records N stops after exactly N records (not the whole read); events to stdout."""
    aws.create_stream("clicks", shards=1)
    aws.put_records("clicks", [{"name": f"e{n}"} for n in range(5)])
    code, out, err = run(
        capsys,
        "import",
        "--stream",
        "clicks",
        "--event-key",
        "name",
        "--start",
        "TRIM_HORIZON",
        "--max-records",
        "3",
        *env,
    )
    assert 0 == code
    assert ["e0", "e1", "e2"] == [json.loads(line)["event"] for line in out.splitlines()]
    assert "stopped: max_records" in err


def test_import_stops_cleanly_on_ctrl_c(aws: LocalAWS, tmp_path: Path) -> None:
    """SIGINT ends a tailing import after the current poll, with the checkpoints saved.

    The subprocess finds the local AWS through AWS_ENDPOINT_URL_KINESIS: the standard AWS
    environment is honoured.
    """
    aws.create_stream("clicks", shards=1)
    aws.put_records("clicks", [{"name": "one"}])
    db = tmp_path / "state.db"
    env = dict(
        os.environ,
        AWS_ENDPOINT_URL_KINESIS=aws.endpoint_url,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_REGION="us-east-1",
    )
    process = subprocess.Popen(  # noqa: S603
        [
            sys.executable,
            "-m",
            "streambridge",
            "import",
            "--stream",
            "clicks",
            "--event-key",
            "name",
            "--start",
            "TRIM_HORIZON",
            "--checkpoints",
            str(db),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    first = process.stdout.readline()  # the event: the import is running
    time.sleep(0.3)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=20)
    assert 0 == process.returncode, err
    assert "one" == json.loads(first)["event"]
    assert "stopped: stop" in err
    assert "Traceback" not in err
    assert "1" == load_checkpoints(db, "clicks")["shardId-000000000000"].sequence_number


# --------------------------------------------------------------------------- check


def test_check_prints_the_policies(
    aws: LocalAWS, env: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """Check verifies both streams and prints least-privilege policies for the chosen options."""
    aws.create_delivery_stream("events")
    aws.create_stream("clicks", shards=1)
    code, out, _ = run(
        capsys,
        "check",
        "--firehose-stream",
        "events",
        "--kinesis-stream",
        "clicks",
        "--put-mode",
        "single",
        *env,
    )
    assert 0 == code
    assert "firehose: delivery stream 'events' is ACTIVE, source DirectPut" in out
    assert "kinesis: stream 'clicks' readable" in out
    assert '"firehose:PutRecord"' in out
    assert "firehose:PutRecordBatch" not in out
    assert "kinesis:GetShardIterator" in out
    assert "arn:aws:firehose:us-east-1:123456789012:deliverystream/events" in out
    # one policy to paste (issue 22), holding both streams' statements
    assert 1 == out.count('"Version"')
    policy = json.loads(out[out.index("{", out.index("the IAM policy these options need:")) :])
    resources = [r for statement in policy["Statement"] for r in statement["Resource"]]
    assert any(":deliverystream/events" in r for r in resources)
    assert any(":stream/clicks" in r for r in resources)


def test_check_without_a_verdict_exits_1(aws: LocalAWS, capsys: pytest.CaptureFixture[str]) -> None:
    """Throttled while checking: no verdict on the permission, exit 1 and "try again"."""
    from streambridge.cli.check import _check_kinesis  # noqa: PLC0415
    from streambridge.testing import FaultInjector, throttling  # noqa: PLC0415

    aws.create_stream("clicks", shards=1)
    client = aws.client("kinesis")
    with FaultInjector(client) as faults:
        faults.add("GetShardIterator", throttling("ProvisionedThroughputExceededException"))
        assert (1, None) == _check_kinesis(client, "clicks", lambda: "123456789012")
    out, err = capsys.readouterr()
    assert "not verified  kinesis:GetShardIterator" in out
    assert "GetShardIterator on Kinesis stream 'clicks' failed (Rate exceeded): try again" in err


def test_import_to_posthog(
    aws: LocalAWS,
    env: list[str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """--posthog-host/--posthog-key send the events to PostHog's batch API, uuids and all.

    posthog-python is not needed for it (since 0.2): it is hidden here as if not installed.
    """
    monkeypatch.setitem(sys.modules, "posthog", None)
    monkeypatch.setitem(sys.modules, "posthog.request", None)
    aws.create_stream("clicks", shards=1)
    aws.put_records("clicks", [{"name": f"e{n}", "user": f"u{n}"} for n in range(3)])
    with local_posthog() as posthog:
        code, out, err = run(
            capsys,
            "import",
            "--stream",
            "clicks",
            "--event-key",
            "name",
            "--mappings",
            "user:distinct_id",
            "--start",
            "TRIM_HORIZON",
            "--until-caught-up",
            "--posthog-host",
            posthog.url,
            "--posthog-key",
            "phc_test",
            *env,
        )
    assert 0 == code, err
    assert "" == out  # events went to PostHog, not to stdout
    sent = posthog.events
    assert {"phc_test"} == set(posthog.api_keys)
    assert [("e0", "u0"), ("e1", "u1"), ("e2", "u2")] == sorted(
        (e["event"], e["distinct_id"]) for e in sent
    )
    assert 3 == len({e["uuid"] for e in sent})


class _Terminal(io.StringIO):
    """A stderr that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def test_progress_only_on_a_terminal(
    aws: LocalAWS, env: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Progress (records/s, lag) is drawn on a terminal stderr, and not with --quiet."""
    aws.create_stream("clicks", shards=1)
    aws.put_records("clicks", [{"name": f"e{n}"} for n in range(3)])
    args = [
        "import",
        "--stream",
        "clicks",
        "--event-key",
        "name",
        "--start",
        "TRIM_HORIZON",
        "--until-caught-up",
        "--output",
        os.devnull,
        *env,
    ]
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert 0 == main(args)
    assert "records/s, lag 0 ms, caught up\x1b[K\n" in terminal.getvalue()
    quiet = _Terminal()
    monkeypatch.setattr(sys, "stderr", quiet)
    assert 0 == main([*args, "--quiet"])
    assert "records/s" not in quiet.getvalue()


def test_the_progress_line_estimates_the_time_to_catch_up() -> None:
    """Issue 22: from how fast the lag fell over the last half minute; nothing when not."""
    from streambridge.cli import _progress  # noqa: PLC0415

    clock = [100.0]
    progress = _progress.Progress(enabled=False, clock=lambda: clock[0])
    assert "" == progress.catch_up(60_000)  # one sample: too soon to say
    clock[0] += 10
    assert ", caught up in ~20 s" == progress.catch_up(40_000)  # 2,000 ms of lag gone a second
    clock[0] += 10
    assert ", caught up in ~60 s" == progress.catch_up(45_000)  # 15 s gone in 20 s
    clock[0] += 10
    assert "" == progress.catch_up(70_000)  # more behind than 30 s ago: not catching up
    assert ", caught up" == progress.catch_up(0)


def test_forward_shows_the_file_done_and_the_records_sent(
    aws: LocalAWS, env: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a terminal, as aws s3 cp does: MB done of the file's size, sent and failed."""
    aws.create_delivery_stream("events")
    batches = jsonl(tmp_path / "b.jsonl", [{"events": [{"event_type": "custom_event"}]}] * 3)
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert 0 == main(["forward", "--stream", "events", str(batches), *env])
    line = terminal.getvalue()
    assert " of 0.0 MB (" in line
    assert ", sent " in line
    assert ", failed 0" in line


# --------------------------------------------------------------------------- newcomers (issue 22)


def test_samples_writes_the_batches_a_newcomer_forwards(
    aws: LocalAWS, env: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``samples --output`` gives the getting-started page's batches.jsonl; forward sends it."""
    code, out, _ = run(capsys, "samples")
    assert (0, 5) == (code, len(out.splitlines()))
    assert all(isinstance(json.loads(line), dict) for line in out.splitlines())
    batches = tmp_path / "batches.jsonl"
    assert 0 == run(capsys, "samples", "--good-only", "--output", str(batches))[0]
    assert 4 == len(batches.read_text().splitlines())
    assert 0o600 == batches.stat().st_mode & 0o777
    assert 2 == run(capsys, "samples", "--output", str(batches))[0]  # not replaced unasked
    aws.create_delivery_stream("mparticle-events")
    code, out, err = run(capsys, "forward", "--stream", "mparticle-events", str(batches), *env)
    assert 0 == code, err
    assert aws.delivered("mparticle-events")


@pytest.mark.parametrize(
    "command", ["forward", "serve", "import", "check", "kcl", "kcl-daemon", "local", "samples"]
)
def test_every_help_ends_with_an_example_and_the_exit_codes(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 22's newcomer trial: each --help shows how to run it and what its exit means."""
    with pytest.raises(SystemExit):
        main([command, "--help"])
    out = capsys.readouterr().out
    example = out.split("example:\n", 1)[1].splitlines()[0]
    assert f"streambridge {command}" in example
    assert "exit codes:" in out
    assert "3  AWS refused" in out


def test_a_replay_shows_its_progress(
    aws: LocalAWS, env: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 22: ``--replay`` of a dead-letter file counts records, sent and failed."""
    from streambridge import DeadLetterFile  # noqa: PLC0415

    aws.create_delivery_stream("events")
    letters = tmp_path / "dead.jsonl"
    with DeadLetterFile(letters) as target:
        target.write_undelivered([b'{"n": 1}\n', b'{"n": 2}\n'], "ServiceUnavailable", "down")
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert 0 == main(["forward", "--stream", "events", "--replay", str(letters), *env])
    assert " records read, " in terminal.getvalue()
    assert ", failed 0" in terminal.getvalue()
