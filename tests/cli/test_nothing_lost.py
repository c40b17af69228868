"""Issue 18, part 1: a dead letter that cannot be written is not a dead letter.

A full disk (``/dev/full`` answers every write with ENOSPC) under ``--dead-letter``: the
records it was to hold are not handed back, so no checkpoint passes them, no summary claims
them written, the command ends with one line and exit 5, and the next run still has them.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from streambridge import (
    DeadLetterFile,
    ForwarderSettings,
    ImporterSettings,
    KclRecordProcessor,
    KinesisImporter,
    PostHogSink,
    read_dead_letters,
)
from streambridge.cli import kcl as kcl_command
from streambridge.cli._common import UsageError, open_dead_letters, output_closed
from streambridge.cli.importing import event_sink
from streambridge.errors import ConfigurationError, DeadLetterError
from streambridge.importer.checkpoints import SQLiteCheckpointStore
from streambridge.importer.kcl import EXIT_DEAD_LETTER
from streambridge.importer.results import SkippedRecord
from streambridge.testing import LocalAWS, local_posthog
from tests.cli.test_cli import _env, jsonl, run  # noqa: F401 - the env fixture
from tests.cli.test_cli_reliability import command, finished, subprocess_env
from tests.conftest import load_checkpoints

FULL = "/dev/full"
SHARD = "shardId-000000000000"
IMPORT = ["import", "--stream", "clicks", "--event-key", "name", "--start", "TRIM_HORIZON"]

needs_dev_full = pytest.mark.skipif(not Path(FULL).exists(), reason="no /dev/full here")


def skipped(n: int) -> SkippedRecord:
    """A skipped record, numbered."""
    return SkippedRecord(SHARD, str(n), 0, "not JSON", b"\xff%d" % n)


# --------------------------------------------------------------------------- the file itself


@needs_dev_full
def test_a_full_disk_raises_and_counts() -> None:
    """Every write to a full disk raises DeadLetterError, and is counted as unwritten."""
    with DeadLetterFile(FULL) as letters:
        with pytest.raises(DeadLetterError) as raised:
            letters.write([skipped(1), skipped(2)])
        assert (raised.value.unwritten, raised.value.target) == (2, FULL)
        assert "No space left on device" in str(raised.value)
        with pytest.raises(DeadLetterError):
            letters(skipped(3))
        assert (letters.written, letters.unwritten) == (0, 3)
        assert letters.last_error == "No space left on device"


def test_a_letter_after_a_cut_one_starts_a_line_of_its_own(tmp_path: Path) -> None:
    """What a crash left half written stays one bad line; the next letter is whole."""
    path = tmp_path / "dead.jsonl"
    with DeadLetterFile(path) as letters:
        letters(skipped(1))
    with path.open("ab") as stream:  # what SIGKILL in the middle of a write leaves
        stream.write(b'{"kind": "skipped", "shard_id": "shardId-0000')
    with DeadLetterFile(path) as letters:
        letters(skipped(2))
    torn: list[tuple[int, str]] = []
    read = list(read_dead_letters(path, on_torn=lambda n, why: torn.append((n, why))))
    assert [r.data for r in read] == [b"\xff1", b"\xff2"]
    assert [n for n, _ in torn] == [2]
    with pytest.raises(ValueError, match="line 2 is not a dead-letter line"):
        list(read_dead_letters(path))


def test_files_holding_events_are_created_private(tmp_path: Path) -> None:
    """Dead letters are created 0600 whatever the umask; an existing file keeps its mode."""
    old = os.umask(0o022)
    try:
        with DeadLetterFile(tmp_path / "new.jsonl"):
            pass
        existing = tmp_path / "old.jsonl"
        existing.touch(mode=0o640)
        existing.chmod(0o640)
        with DeadLetterFile(existing):
            pass
    finally:
        os.umask(old)
    assert (tmp_path / "new.jsonl").stat().st_mode & 0o777 == 0o600
    assert existing.stat().st_mode & 0o777 == 0o640


# --------------------------------------------------------------------------- the importer


@needs_dev_full
@pytest.mark.integration
def test_import_does_not_checkpoint_past_letters_a_full_disk_refused(
    aws: LocalAWS, env: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """3 poison records, dead letters on a full disk: exit 5, one line, checkpoint unmoved.

    A second run with a working file writes all 3.
    """
    aws.create_stream("clicks", shards=1)
    aws.put_records("clicks", [b"not json 1", b"not json 2", b"not json 3"])
    db, out = tmp_path / "state.db", tmp_path / "events.jsonl"
    common = [*IMPORT, "--checkpoints", str(db), "--output", str(out), "--until-caught-up", *env]
    code, _, err = run(capsys, *common, "--dead-letter", FULL)
    assert code == 5
    (line,) = [x for x in err.splitlines() if x.startswith("streambridge: error:")]
    assert "cannot write 3 dead letter(s) to '/dev/full'" in line
    assert "next run reads them again" in line
    with SQLiteCheckpointStore(db) as store:
        assert store.load("clicks")[SHARD].sequence_number is None
    letters = tmp_path / "dead.jsonl"
    code, _, err = run(capsys, *common, "--dead-letter", str(letters))
    assert code == 1  # every record read was skipped
    assert [d.data for d in read_dead_letters(letters)] == [
        b"not json 1",
        b"not json 2",
        b"not json 3",
    ]


class Checkpointer:
    """The daemon's checkpointer: what was asked of it."""

    def __init__(self) -> None:
        """Nothing asked yet."""
        self.calls: list[Any] = []

    def checkpoint(self, sequence: str | None = None, sub: int | None = None) -> None:
        """Note the checkpoint asked for."""
        self.calls.append((sequence, sub))


@needs_dev_full
def test_the_kcl_processor_exits_without_checkpointing_letters_it_could_not_write() -> None:
    """5 poison records, dead letters on a full disk: exit 5 and no checkpoint asked for."""
    settings = ImporterSettings(stream_name="clicks", event_key="name")
    with DeadLetterFile(FULL) as letters:
        processor = KclRecordProcessor(settings, lambda _events: None, on_skip=letters)
        checkpointer = Checkpointer()

        batch = SimpleNamespace(
            records=[
                {"data": "bm90IGpzb24=", "sequenceNumber": str(n), "subSequenceNumber": 0}
                for n in range(1, 6)
            ],
            checkpointer=checkpointer,
        )
        with pytest.raises(SystemExit) as exited:
            processor.process_records(batch)
    assert exited.value.code == EXIT_DEAD_LETTER == 5
    assert checkpointer.calls == []
    assert processor.delivered is None


# --------------------------------------------------------------------------- the forwarder


def _big_batches(count: int) -> list[dict[str, Any]]:
    """Batches whose one record is over Firehose's 1,000 KiB: each fails (RecordTooLarge)."""
    return [
        {
            "message_id": f"m{n}",
            "events": [{"event_type": "custom_event", "data": {"blob": "x" * 1_100_000}}],
        }
        for n in range(count)
    ]


@needs_dev_full
@pytest.mark.integration
def test_forward_never_claims_a_write_that_failed(
    aws: LocalAWS, env: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """3 records too large, dead letters on a full disk: not "written to"; exit 5, one line."""
    aws.create_delivery_stream("events")
    source = jsonl(tmp_path / "in.jsonl", _big_batches(3))
    code, _, err = run(
        capsys, "forward", "--stream", "events", "--dead-letter", FULL, *env, str(source)
    )
    assert code == 5
    assert "; written to '/dev/full'" not in err
    assert "3 record(s) not delivered; NOT written to '/dev/full'" in err
    (line,) = [x for x in err.splitlines() if x.startswith("streambridge: error:")]
    assert "3 record(s) not delivered could not be written to '/dev/full'" in line
    assert "No space left on device" in line


@needs_dev_full
@pytest.mark.integration
def test_forward_fatal_path_with_a_full_disk_is_one_line(
    aws: LocalAWS, env: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A missing delivery stream and a full disk: one line saying the records are in no file."""
    batches = [{"events": [{"event_type": "custom_event", "data": {"n": n}}]} for n in range(3)]
    source = jsonl(tmp_path / "in.jsonl", batches)
    code, _, err = run(
        capsys, "forward", "--stream", "nope", "--dead-letter", FULL, *env, str(source)
    )
    assert code == 5
    (line,) = [x for x in err.splitlines() if x.startswith("streambridge: error:")]
    assert "3 record(s) not delivered, and NOT written to '/dev/full'" in line


@pytest.mark.integration
def test_replay_of_a_torn_file_sends_every_whole_line(
    aws: LocalAWS, env: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """20 whole lines and a last one cut short: 20 delivered, line 21 reported and kept, exit 1."""
    batches = [{"events": [{"event_type": "custom_event", "data": {"n": n}}]} for n in range(20)]
    source = jsonl(tmp_path / "in.jsonl", batches)
    dead = tmp_path / "dead.jsonl"
    code, _, _ = run(
        capsys, "forward", "--stream", "later", "--dead-letter", str(dead), *env, str(source)
    )
    assert code == 3
    whole = dead.read_bytes()
    torn = json.dumps({"kind": "failed", "data": '{"n": 99'})[:25].encode()
    dead.write_bytes(whole + torn)
    aws.create_delivery_stream("later")
    code, out, err = run(capsys, "forward", "--stream", "later", "--replay", str(dead), *env)
    assert code == 1
    assert "sent 20 record(s)" in out
    assert "line 21 is not a dead-letter line" in err
    assert "it stays in the file" in err
    assert dead.read_bytes() == whole + torn
    assert sorted(r["events"][0]["data"]["n"] for r in aws.delivered("later")) == list(range(20))


@pytest.mark.integration
def test_replay_of_a_file_that_is_not_dead_letters_says_what_it_lacks(
    env: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A JSON line without ``data``: the key named in words, not a raw KeyError text."""
    other = tmp_path / "other.jsonl"
    other.write_text('{"kind": "failed", "reason": "r"}\n')
    code, _, err = run(capsys, "forward", "--stream", "s", "--replay", str(other), *env)
    assert code == 2
    assert "line 1 is not a dead-letter line: it has no 'data'" in err


# --------------------------------------------------------------------------- `| head`


def _head(aws: LocalAWS, lines: int, *argv: str) -> tuple[list[str], subprocess.Popen[bytes]]:
    """``streambridge import … | head -N``: read N lines, then leave; the process ends by itself."""
    process = subprocess.Popen(  # noqa: S603
        command(*argv), env=subprocess_env(aws), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert process.stdout is not None
    got = [process.stdout.readline().decode() for _ in range(lines)]
    process.stdout.close()  # what head does when it has its lines
    return got, process


@pytest.mark.integration
@pytest.mark.parametrize(("shards", "count"), [(1, 2000), (4, 2000), (4, 400)])
def test_import_into_head_checkpoints_only_what_went_into_the_pipe(
    aws: LocalAWS, tmp_path: Path, shards: int, count: int
) -> None:
    """``| head -5``, then a second run: every event is delivered somewhere.

    One big write cut short (1 shard), and pages small enough to sit whole in the pipe's
    buffer when head leaves (4 shards, 400 records): neither is counted written.
    """
    aws.create_stream("clicks", shards=shards)
    aws.put_records("clicks", [{"name": "click", "n": n} for n in range(count)])
    db = tmp_path / "state.db"
    argv = [*IMPORT, "--mappings", "n:n", "--checkpoints", str(db), "--until-caught-up"]
    head, process = _head(aws, 5, *argv)
    assert process.wait(timeout=60) == 0
    assert process.stderr is not None
    process.stderr.close()
    rest = tmp_path / "rest.jsonl"
    done = finished(aws, *argv, "--output", str(rest))
    assert done.returncode == 0, done.stderr
    seen = {json.loads(line)["properties"]["n"] for line in head}
    seen |= {json.loads(line)["properties"]["n"] for line in rest.read_text().splitlines()}
    assert seen == set(range(count))


@pytest.mark.integration
def test_an_idle_import_into_head_ends_when_head_does(aws: LocalAWS) -> None:
    """A caught-up stream, no --until-caught-up, ``| head -1``: it ends within seconds, exit 0."""
    aws.create_stream("clicks", shards=1)
    aws.put_records("clicks", [{"name": "click", "n": 1}])
    (line,), process = _head(aws, 1, *IMPORT)
    assert json.loads(line)["event"] == "click"
    try:
        assert process.wait(timeout=20) == 0
    finally:
        process.kill()
    assert process.stderr is not None
    assert b"output closed" in process.stderr.read()
    process.stderr.close()


@pytest.mark.integration
def test_output_is_private_and_not_replaced_unasked(
    aws: LocalAWS, env: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--output and --checkpoints are created 0600; a non-empty --output needs --force."""
    aws.create_stream("clicks", shards=1)
    aws.put_records("clicks", [{"name": "click"}])
    out, db = tmp_path / "events.jsonl", tmp_path / "state.db"
    argv = [*IMPORT, "--until-caught-up", "--output", str(out), *env]
    old = os.umask(0o022)
    try:
        assert run(capsys, *argv, "--checkpoints", str(db))[0] == 0
        assert out.stat().st_mode & 0o777 == 0o600
        assert db.stat().st_mode & 0o777 == 0o600
        code, _, err = run(capsys, *argv)
        assert code == 2
        assert "pass --force to replace it" in err
        assert len(out.read_text().splitlines()) == 1
        assert run(capsys, *argv, "--force")[0] == 0
    finally:
        os.umask(old)


# --------------------------------------------------------------------------- secrets


@pytest.mark.integration
@pytest.mark.parametrize("how", ["file", "environment", "command line"])
def test_the_posthog_key_need_not_be_on_the_command_line(
    aws: LocalAWS,
    env: list[str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    how: str,
) -> None:
    """POSTHOG_API_KEY or --posthog-key-file; --posthog-key still works, with a warning."""
    aws.create_stream("clicks", shards=1)
    aws.put_records("clicks", [{"name": "click"}])
    key_file = tmp_path / "key"
    key_file.write_text("phc_secret\n")
    given = {
        "file": ["--posthog-key-file", str(key_file)],
        "environment": [],
        "command line": ["--posthog-key", "phc_secret"],
    }[how]
    if how == "environment":
        monkeypatch.setenv("POSTHOG_API_KEY", "phc_secret")
    with local_posthog() as posthog:
        code, _, err = run(
            capsys, *IMPORT, "--until-caught-up", "--posthog-host", posthog.url, *given, *env
        )
    assert code == 0, err
    assert set(posthog.api_keys) == {"phc_secret"}
    assert "phc_secret" not in err
    assert ("can be read by every user" in err) == (how == "command line")


@pytest.mark.integration
def test_a_posthog_host_without_a_key_says_where_keys_come_from(
    env: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """No key anywhere: one line naming POSTHOG_API_KEY and --posthog-key-file, exit 2."""
    monkeypatch.delenv("POSTHOG_API_KEY", raising=False)
    code, _, err = run(capsys, *IMPORT, "--posthog-host", "http://127.0.0.1:9", *env)
    assert code == 2
    assert "set POSTHOG_API_KEY, or pass --posthog-key-file FILE" in err


def test_the_sample_kcl_properties_keep_the_key_off_the_command_line() -> None:
    """docs/streambridge-kcl.properties names a key file; no key in executableName."""
    properties = Path(__file__).parents[2] / "docs" / "streambridge-kcl.properties"
    (line,) = [x for x in properties.read_text().splitlines() if x.startswith("executableName")]
    assert "--posthog-key-file" in line
    assert "--posthog-key " not in line
    assert "phc_" not in line


# --------------------------------------------------------------------------- honest stops


@pytest.mark.integration
def test_caught_up_means_read_at_the_tip_in_this_run(aws: LocalAWS) -> None:
    """A second run(until_caught_up=True) reads the 100 records that came since the first."""
    aws.create_stream("clicks", shards=1)
    aws.put_records("clicks", [{"name": "click", "n": n} for n in range(10)])
    settings = ImporterSettings(
        stream_name="clicks", event_key="name", start_position="TRIM_HORIZON"
    )
    events: list[Any] = []
    importer = KinesisImporter(aws.client("kinesis"), settings, sink=events.extend)
    first = importer.run(until_caught_up=True)
    assert (first.stopped_because, len(events)) == ("caught_up", 10)
    aws.put_records("clicks", [{"name": "click", "n": n} for n in range(10, 110)])
    second = importer.run(until_caught_up=True)
    assert second.stopped_because == "caught_up"
    assert second.calls >= 1
    assert len(events) == 110


def test_kcl_sink_patience_bounds_the_posthog_sinks_own_retries(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """--sink-patience 2: PostHogSink gives up within 2 s of retrying, not its own 60 s."""
    monkeypatch.setenv("POSTHOG_API_KEY", "phc_k")
    parser = argparse.ArgumentParser()
    commands = parser.add_subparsers(dest="command")
    kcl_command.add_parser(commands)
    args = parser.parse_args(
        ["kcl", "--stream", "s", "--event-key", "e", "--posthog-host", "http://127.0.0.1:9",
         "--sink-patience", "2"]
    )  # fmt: skip
    sink, _, _ = event_sink(args, patience=args.sink_patience)
    assert isinstance(sink, PostHogSink)
    assert sink.retry.max_elapsed == 2
    assert sink.timeout <= 2
    default, _, _ = event_sink(args)
    assert isinstance(default, PostHogSink)
    assert default.retry.max_elapsed == 60


# --------------------------------------------------------------------------- the command line


@pytest.mark.integration
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_forward_stops_on_a_signal_while_its_pipe_is_quiet(aws: LocalAWS, signum: int) -> None:
    """A line, then a quiet pipe left open; a signal: delivered, summary, exit 128 + signal."""
    aws.create_delivery_stream("events")
    process = subprocess.Popen(  # noqa: S603
        command("forward", "--stream", "events", "--flush-interval", "60"),
        env=subprocess_env(aws),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdin is not None
    batch = {"events": [{"event_type": "custom_event", "data": {"n": 1}}]}
    process.stdin.write(json.dumps(batch).encode() + b"\n")
    process.stdin.flush()
    time.sleep(1.0)  # let it be read; the pipe then stays open and quiet
    process.send_signal(signum)
    try:  # stdin stays open: the old code waited for another line (or the end of input)
        process.wait(timeout=30)
    finally:
        process.kill()
        process.stdin.close()
    assert process.stdout is not None
    assert process.stderr is not None
    out, err = process.stdout.read(), process.stderr.read()
    process.stdout.close()
    process.stderr.close()
    assert process.returncode == 128 + signum, err
    assert b"sent 1 record(s)" in out
    assert f"stopped by {signal.Signals(signum).name}".encode() in err
    assert [r["events"][0]["data"]["n"] for r in aws.delivered("events")] == [1]


def test_local_on_a_busy_port_is_one_line_not_a_hang() -> None:
    """`streambridge local --port <taken>`: exit 2 with one line, at once."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(  # noqa: S603
            command("local", "--port", str(port)),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 2, done.stderr
    assert f"cannot serve on 127.0.0.1:{port}: Address already in use" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("selector", "hint"),
    [
        ("devce_info.ios_advertising_id", "did you mean 'device_info.ios_advertising_id'?"),
        ("nothing_like_it.x", "is not a top-level object of a batch"),
    ],
)
def test_a_typo_in_a_dotted_exclusion_is_refused(selector: str, hint: str) -> None:
    """The first segment must be a batch's object; a typo would forward the advertising id."""
    with pytest.raises(ConfigurationError, match="not a top-level object") as raised:
        ForwarderSettings(delivery_stream_name="s", metadata_field_exclusion=selector)
    assert hint in str(raised.value)


@pytest.mark.integration
def test_forward_exits_2_for_a_dotted_typo(
    env: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """docs/cli.md's promise: a Metadata Field Exclusion that names nothing is exit 2."""
    settings = tmp_path / "mparticle.json"
    settings.write_text(
        json.dumps(
            {
                "Delivery Stream Name": "events",
                "Metadata Field Exclusion": "devce_info.ios_advertising_id",
            }
        )
    )
    source = jsonl(tmp_path / "in.jsonl", [{"events": []}])
    code, _, err = run(capsys, "forward", "--settings", str(settings), *env, str(source))
    assert code == 2
    assert "did you mean 'device_info.ios_advertising_id'?" in err


@pytest.mark.integration
def test_forward_keeps_unreadable_lines_and_malformed_events(
    aws: LocalAWS, env: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Lines that are no batch and events that are malformed go to --dead-letter, by line."""
    aws.create_delivery_stream("events")
    source = tmp_path / "in.jsonl"
    good = {"events": [{"event_type": "custom_event", "data": {"n": 1}}, 42, {"data": {}}]}
    source.write_bytes(b"not json\n" + json.dumps(good).encode() + b"\n\xff\xfe\n")
    dead = tmp_path / "dead.jsonl"
    code, out, _ = run(
        capsys, "forward", "--stream", "events", "--dead-letter", str(dead), *env, str(source)
    )
    assert code == 1
    assert "sent 1 record(s)" in out
    letters = [json.loads(line) for line in dead.read_text().splitlines()]
    kept = [(d["kind"], d["line"], d.get("position")) for d in letters]
    assert kept == [
        ("unreadable", 1, None),
        ("dropped", 2, 1),
        ("dropped", 2, 2),
        ("unreadable", 3, None),
    ]
    assert letters[0]["data"] == "not json"
    assert letters[1]["record"] == 42
    assert letters[2]["record"] == {"data": {}}
    assert "data_base64" in letters[3]
    assert all(d["reason"] for d in letters)
    code, out, err = run(capsys, "forward", "--stream", "events", "--replay", str(dead), *env)
    assert "sent 0 record(s)" in out
    assert "entry 2 is an input event that was malformed; not sent" in err


@pytest.mark.integration
def test_dead_letters_of_a_stopped_run_do_not_claim_zero_attempts(
    env: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Records carried by a run that stopped: "attempts" is unknown (null), not 0."""
    source = jsonl(tmp_path / "in.jsonl", [{"events": [{"event_type": "custom_event"}]}])
    dead = tmp_path / "dead.jsonl"
    code, _, _ = run(
        capsys, "forward", "--stream", "nope", "--dead-letter", str(dead), *env, str(source)
    )
    assert code == 3
    (letter,) = [json.loads(line) for line in dead.read_text().splitlines()]
    assert letter["attempts"] is None


@pytest.mark.integration
def test_forward_warns_when_a_dotted_exclusion_removes_nothing(
    aws: LocalAWS, env: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A misspelt second segment names no field of any batch: a warning, the field is kept."""
    aws.create_delivery_stream("events")
    settings = tmp_path / "mparticle.json"
    exclusion = "device_info.ios_advertisng_id, device_info.platform"
    settings.write_text(
        json.dumps({"Delivery Stream Name": "events", "Metadata Field Exclusion": exclusion})
    )
    batch = {
        "device_info": {"ios_advertising_id": "idfa", "platform": "iOS"},
        "events": [{"event_type": "custom_event", "data": {}}],
    }
    source = jsonl(tmp_path / "in.jsonl", [batch, batch])
    code, _, err = run(capsys, "forward", "--settings", str(settings), *env, str(source))
    assert code == 0
    assert (
        "Metadata Field Exclusion 'device_info.ios_advertisng_id' removed nothing from any of "
        "the 2 batch(es)" in err
    )
    assert "device_info.platform" not in err


@pytest.mark.integration
def test_import_into_a_reader_that_never_reads_stops_on_sigterm(
    aws: LocalAWS, tmp_path: Path
) -> None:
    """A pipe nobody reads: SIGTERM gives up waiting, nothing is checkpointed (exit 1)."""
    aws.create_stream("clicks", shards=1)
    aws.put_records("clicks", [{"name": "click", "n": n} for n in range(10)])
    db = tmp_path / "state.db"
    process = subprocess.Popen(  # noqa: S603 - stdout is a pipe we never read
        command(*IMPORT, "--checkpoints", str(db)),
        env=subprocess_env(aws),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    time.sleep(2.0)  # it has written a line, and waits for the reader
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    finally:
        process.kill()
    assert process.stdout is not None
    assert process.stderr is not None
    process.stdout.close()
    err = process.stderr.read().decode()
    process.stderr.close()
    assert process.returncode == 1, err
    assert "10 event(s) read were not delivered" in err
    assert load_checkpoints(db, "clicks")[SHARD].sequence_number is None


@pytest.mark.parametrize(
    ("given", "content", "message"),
    [
        (["--posthog-key-file", "{missing}"], None, "cannot read"),
        (["--posthog-key-file", "{key}"], "  \n", "is empty: it should hold the key"),
        (["--posthog-key-file", "{key}", "--posthog-key", "k"], "phc_k", "give one of them"),
    ],
)
def test_a_posthog_key_file_that_cannot_serve_is_one_line(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    given: list[str],
    content: str | None,
    message: str,
) -> None:
    """A missing or empty key file, or a key given twice: exit 2 with one line."""
    key = tmp_path / "key"
    if content is not None:
        key.write_text(content)
    argv = [g.format(missing=tmp_path / "nope", key=key) for g in given]
    code, _, err = run(
        capsys, *IMPORT, "--posthog-host", "http://127.0.0.1:9", *argv, "--region", "us-east-1"
    )
    assert code == 2
    assert message in err


def test_output_closed_sees_a_reader_leave_without_writing() -> None:
    """POLLERR on a pipe nobody reads; nothing on an open pipe, a file, or a stand-in."""
    read_end, write_end = os.pipe()
    with os.fdopen(write_end, "w") as stream:
        assert not output_closed(stream)
        os.close(read_end)
        assert output_closed(stream)
    assert not output_closed(io.StringIO())


def test_a_dead_letter_file_that_cannot_be_opened_is_a_usage_error(tmp_path: Path) -> None:
    """A folder that does not exist: one line naming the path, exit 2 (not a traceback)."""
    with pytest.raises(UsageError, match="cannot write"):
        open_dead_letters(str(tmp_path / "no" / "dead.jsonl"), argparse.Namespace())
