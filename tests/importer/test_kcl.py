"""The KCL record processor: ``streambridge kcl`` as the MultiLangDaemon's child, no Java.

The tests play the daemon's side of the multi-lang protocol (JSON lines on the child's stdin
and stdout: initialize, processRecords, checkpoint answers, shardEnded, leaseLost,
shutdownRequested) against the real command, with amazon-kclpy's own Python modules doing
the child's side (fetched from its sdist: tests/kclpy.py).
"""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from aws_kinesis_agg.aggregator import RecordAggregator
from aws_kinesis_agg.deaggregator import deaggregate_records

from streambridge import ImporterSettings, KclRecordProcessor, PostHogEvent, SkippedRecord
from streambridge.importer.events import event_uuid
from streambridge.importer.kcl import EXIT_SINK_FAILED
from streambridge.testing import local_posthog

SHARD = "shardId-000000000001"
ARRIVAL_MS = 1545084650987


def doc(n: int) -> bytes:
    """One record's data: a JSON document with an event name."""
    return json.dumps({"name": "click", "user": f"u{n}", "n": n}).encode()


def kcl_record(sequence: str, data: bytes, sub: int = 0) -> dict[str, Any]:
    """A record as the MultiLangDaemon writes it (KCL 2 and 3)."""
    return {
        "action": "record",
        "data": base64.b64encode(data).decode(),
        "partitionKey": "k",
        "sequenceNumber": sequence,
        "subSequenceNumber": sub,
        "approximateArrivalTimestamp": ARRIVAL_MS,
    }


def process(*records: dict[str, Any]) -> dict[str, Any]:
    """A processRecords message."""
    return {"action": "processRecords", "records": list(records), "millisBehindLatest": 0}


class Daemon:
    """The MultiLangDaemon's side: one ``streambridge kcl`` child, spoken to in JSON lines."""

    def __init__(self, env: dict[str, str], tmp: Path, *options: str) -> None:
        """Start the child with ``options``; initialize it for :data:`SHARD`."""
        self.stderr_path = tmp / "child.err"
        self.stderr = self.stderr_path.open("w")
        command = [sys.executable, "-m", "streambridge", "kcl", "--stream", "clicks"]
        command += ["--event-key", "name", "--mappings", "user:distinct_id,n:n", *options]
        self.process = subprocess.Popen(  # noqa: S603 - our own command
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            text=True,
            env=env,
        )
        self.send({"action": "initialize", "shardId": SHARD})
        assert self.receive() == {"action": "status", "responseFor": "initialize"}

    def send(self, message: dict[str, Any]) -> None:
        """One line to the child's stdin."""
        if message.get("action") == "initialize":
            message = {**message, "sequenceNumber": "TRIM_HORIZON", "subSequenceNumber": 0}
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(message) + "\n")
        self.process.stdin.flush()

    def receive(self) -> dict[str, Any]:
        """The child's next message (amazon-kclpy writes blank lines around each)."""
        assert self.process.stdout is not None
        while True:
            line = self.process.stdout.readline()
            if not line:
                msg = f"the child closed stdout: {self.stderr_path.read_text()}"
                raise AssertionError(msg)
            if line.strip():
                message: dict[str, Any] = json.loads(line)
                return message

    def answer_checkpoint(self, request: dict[str, Any], error: str | None = None) -> None:
        """The daemon's answer to a checkpoint request."""
        assert request["action"] == "checkpoint"
        self.send(
            {
                "action": "checkpoint",
                "sequenceNumber": request["sequenceNumber"],
                "subSequenceNumber": request["subSequenceNumber"],
                "error": error,
            }
        )

    def close(self) -> None:
        """Kill the child if it still runs; close every pipe and file."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None and not pipe.closed:
                pipe.close()
        self.stderr.close()

    def finish(self) -> tuple[int, str]:
        """Close stdin; the exit code and what the child logged."""
        assert self.process.stdin is not None
        self.process.stdin.close()
        code = self.process.wait(timeout=60)
        self.stderr.close()
        assert self.process.stdout is not None
        self.process.stdout.close()
        return code, self.stderr_path.read_text()


@pytest.fixture
def daemon(kclpy: dict[str, str], tmp_path: Path) -> Iterator[Any]:
    """Start children (``daemon(*options)``); each is killed at the end if still running."""
    started: list[Daemon] = []

    def start(*options: str) -> Daemon:
        child = Daemon(kclpy, tmp_path, *options)
        started.append(child)
        return child

    yield start
    for child in started:
        child.close()


def events_in(path: Path) -> list[dict[str, Any]]:
    """The events written as JSON lines."""
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_batch_is_delivered_before_its_last_record_is_checkpointed(
    daemon: Any, tmp_path: Path
) -> None:
    """processRecords: events written, then checkpoint at the last (sequence, sub-sequence)."""
    out = tmp_path / "events.jsonl"
    child = daemon("--output", str(out))
    child.send(process(kcl_record("100", doc(0)), kcl_record("101", doc(1) + b"\n" + doc(2))))
    request = child.receive()
    assert request == {"action": "checkpoint", "sequenceNumber": "101", "subSequenceNumber": 0}
    delivered = events_in(out)  # the sink returned before the checkpoint was asked for
    assert [e["properties"]["n"] for e in delivered] == [0, 1, 2]
    assert [e["uuid"] for e in delivered] == [
        event_uuid("clicks", SHARD, "100", 0),
        event_uuid("clicks", SHARD, "101", 0),
        event_uuid("clicks", SHARD, "101", 1),
    ]
    assert delivered[0]["timestamp"] == "2018-12-17T22:10:50.987000+00:00"
    child.answer_checkpoint(request)
    assert child.receive() == {"action": "status", "responseFor": "processRecords"}
    assert child.finish()[0] == 0


def test_kpl_user_records_split_by_the_kcl_keep_their_sub_sequence_in_the_uuid(
    daemon: Any, tmp_path: Path
) -> None:
    """The KCL de-aggregates; each user record's uuid is the one KinesisImporter gives."""
    aggregator = RecordAggregator()
    for n in range(3):
        aggregator.add_user_record("k", doc(n))
    _, _, packed = aggregator.clear_and_get().get_contents()
    lambda_style = {
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "sequenceNumber": "700",
            "approximateArrivalTimestamp": ARRIVAL_MS,
            "partitionKey": "k",
            "data": base64.b64encode(bytes(packed)).decode(),
        }
    }
    users = deaggregate_records([lambda_style])  # what the KCL hands its processor
    records = [
        kcl_record("700", base64.b64decode(u["kinesis"]["data"]), u["kinesis"]["subSequenceNumber"])
        for u in users
    ]
    out = tmp_path / "events.jsonl"
    child = daemon("--output", str(out))
    child.send(process(*records))
    request = child.receive()
    assert request == {"action": "checkpoint", "sequenceNumber": "700", "subSequenceNumber": 2}
    assert [e["uuid"] for e in events_in(out)] == [
        event_uuid("clicks", SHARD, "700", 0, sub) for sub in range(3)
    ]
    child.answer_checkpoint(request)
    assert child.receive()["responseFor"] == "processRecords"


def test_poison_records_are_dead_lettered_and_the_checkpoint_still_moves(
    daemon: Any, tmp_path: Path
) -> None:
    """A record that cannot become an event is skipped with its reason; the rest go on."""
    out, letters = tmp_path / "events.jsonl", tmp_path / "dead.jsonl"
    child = daemon("--output", str(out), "--dead-letter", str(letters))
    child.send(process(kcl_record("1", b"\xff\xfe not json"), kcl_record("2", doc(2))))
    request = child.receive()
    assert request["sequenceNumber"] == "2"
    child.answer_checkpoint(request)
    assert child.receive()["responseFor"] == "processRecords"
    assert [e["properties"]["n"] for e in events_in(out)] == [2]
    _, said = child.finish()
    assert "skipped 1 record(s): not valid UTF-8" in said
    assert "skipped skipped" not in said  # the summary says it once
    dead = [json.loads(line) for line in letters.read_text().splitlines()]
    assert [(d["sequence_number"], d["shard_id"]) for d in dead] == [("1", SHARD)]
    assert dead[0]["reason"]


def test_a_sink_that_cannot_take_events_ends_the_child_without_a_checkpoint(
    daemon: Any,
) -> None:
    """PostHog refusing the key: exit 4, no checkpoint asked for — the records are read again."""
    with local_posthog() as posthog:
        posthog.status = 401
        child = daemon("--posthog-host", posthog.url, "--posthog-key", "phc_wrong")
        child.send(process(kcl_record("1", doc(1))))
        assert child.process.wait(timeout=60) == EXIT_SINK_FAILED
        assert child.process.stdout is not None
        told = child.process.stdout.read()  # all the child said after initialize
        code, log = child.finish()
    assert code == EXIT_SINK_FAILED
    assert "checkpoint" not in told
    assert "status" not in told  # it never said the batch was processed
    assert "the sink cannot take events" in log


def test_posthog_receives_the_events(daemon: Any) -> None:
    """The PostHog sink end to end: events there before the checkpoint is asked for."""
    with local_posthog() as posthog:
        child = daemon("--posthog-host", posthog.url, "--posthog-key", "phc_test")
        child.send(process(kcl_record("1", doc(1)), kcl_record("2", doc(2))))
        request = child.receive()
        assert [e["properties"]["n"] for e in posthog.events] == [1, 2]
        child.answer_checkpoint(request)
        assert child.receive()["responseFor"] == "processRecords"


def test_a_throttled_checkpoint_is_tried_again(daemon: Any, tmp_path: Path) -> None:
    """ThrottlingException from the lease table: the same checkpoint is asked for again."""
    child = daemon("--output", str(tmp_path / "events.jsonl"))
    child.send(process(kcl_record("5", doc(5))))
    first = child.receive()
    child.answer_checkpoint(first, "ThrottlingException")
    again = child.receive()
    assert again == first
    child.answer_checkpoint(again)
    assert child.receive()["responseFor"] == "processRecords"


def test_shard_end_checkpoints_the_end_and_lease_loss_checkpoints_nothing(
    daemon: Any, tmp_path: Path
) -> None:
    """shardEnded: checkpoint() with no position (SHARD_END); leaseLost: none at all."""
    child = daemon("--output", str(tmp_path / "events.jsonl"))
    child.send({"action": "shardEnded"})
    request = child.receive()
    assert request == {"action": "checkpoint", "sequenceNumber": None, "subSequenceNumber": None}
    child.answer_checkpoint(request)
    assert child.receive() == {"action": "status", "responseFor": "shardEnded"}
    other = daemon("--output", str(tmp_path / "other.jsonl"))
    other.send({"action": "leaseLost"})
    assert other.receive() == {"action": "status", "responseFor": "leaseLost"}


def test_shutdown_requested_checkpoints_what_was_delivered_but_not_yet_checkpointed(
    daemon: Any, tmp_path: Path
) -> None:
    """A checkpoint refused earlier is made at shutdown; one already made is not repeated."""
    child = daemon("--output", str(tmp_path / "events.jsonl"))
    child.send(process(kcl_record("8", doc(8))))
    child.answer_checkpoint(child.receive(), "InvalidStateException")
    assert child.receive()["responseFor"] == "processRecords"
    child.send({"action": "shutdownRequested"})
    request = child.receive()
    assert request == {"action": "checkpoint", "sequenceNumber": "8", "subSequenceNumber": 0}
    child.answer_checkpoint(request)
    assert child.receive() == {"action": "status", "responseFor": "shutdownRequested"}
    child.send({"action": "shutdownRequested"})  # nothing new: no checkpoint
    assert child.receive() == {"action": "status", "responseFor": "shutdownRequested"}


def test_lease_gone_at_checkpoint_is_not_retried(daemon: Any, tmp_path: Path) -> None:
    """ShutdownException: another worker owns the shard; the child goes on, quietly."""
    child = daemon("--output", str(tmp_path / "events.jsonl"))
    child.send(process(kcl_record("9", doc(9))))
    child.answer_checkpoint(child.receive(), "ShutdownException")
    assert child.receive() == {"action": "status", "responseFor": "processRecords"}


def test_stdout_is_the_daemons(kclpy: dict[str, str]) -> None:
    """Events cannot go to stdout (the protocol's channel): a usage error, exit 2."""
    done = subprocess.run(
        [sys.executable, "-m", "streambridge", "kcl", "--stream", "s", "--event-key", "e"],
        capture_output=True,
        text=True,
        env=kclpy,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "stdout is the daemon's" in done.stderr


# --------------------------------------------------------------------------- in process


class Checkpointer:
    """amazon-kclpy's checkpointer, as the processor sees it: records each call."""

    def __init__(self, errors: Sequence[str] = ()) -> None:
        """Raise these errors (by name, as amazon-kclpy does) on the first calls."""
        self.calls: list[tuple[str | None, int | None]] = []
        self.errors = list(errors)

    def checkpoint(self, sequence: str | None = None, sub: int | None = None) -> None:
        """Record the call; raise the next queued error, if any."""
        from amazon_kclpy.checkpoint_error import CheckpointError  # noqa: PLC0415

        self.calls.append((sequence, sub))
        if self.errors:
            raise CheckpointError(self.errors.pop(0))


def records_input(checkpointer: Checkpointer, *records: dict[str, Any]) -> Any:
    """amazon-kclpy's own ProcessRecordsInput, dispatched as the daemon's line would be."""
    from amazon_kclpy import dispatch  # noqa: PLC0415

    line = json.dumps(process(*records))
    message = json.loads(line, object_hook=dispatch.message_decode)
    message._checkpointer = checkpointer  # what dispatch() sets
    return message


class FlakySink:
    """Fails ``failures`` times, then takes everything."""

    def __init__(self, failures: int) -> None:
        """A sink that fails its first ``failures`` calls."""
        self.failures = failures
        self.events: list[PostHogEvent] = []

    def __call__(self, events: Sequence[PostHogEvent]) -> None:
        """Fail, or take the events."""
        if self.failures:
            self.failures -= 1
            raise ConnectionError("PostHog is down")
        self.events.extend(events)


SETTINGS = ImporterSettings(stream_name="clicks", event_key="name")


def test_a_failing_sink_is_retried_with_backoff_before_the_checkpoint(kclpy: Any) -> None:
    """Two failures, then success: the checkpoint comes only after the events were taken."""
    slept: list[float] = []
    sink = FlakySink(2)
    processor = KclRecordProcessor(SETTINGS, sink, sleep=slept.append, random=lambda: 1.0)
    checkpointer = Checkpointer()
    processor.process_records(records_input(checkpointer, kcl_record("3", doc(3))))
    assert len(sink.events) == 1
    assert len(slept) == 2
    assert checkpointer.calls == [("3", 0)]


def test_a_sink_failing_past_its_patience_exits_without_checkpointing(kclpy: Any) -> None:
    """SystemExit (amazon-kclpy would swallow an exception and let a later checkpoint pass)."""
    clock = iter([0.0, 10.0, 400.0])
    skipped: list[SkippedRecord] = []
    processor = KclRecordProcessor(
        SETTINGS,
        FlakySink(99),
        on_skip=skipped.append,
        sink_patience=300.0,
        sleep=lambda _s: None,
        clock=lambda: next(clock),
    )
    checkpointer = Checkpointer()
    with pytest.raises(SystemExit) as exited:
        processor.process_records(records_input(checkpointer, kcl_record("3", doc(3))))
    assert exited.value.code == EXIT_SINK_FAILED
    assert checkpointer.calls == []
    assert processor.delivered is None


def test_checkpoint_throttling_gives_up_after_the_retry_budget(kclpy: Any) -> None:
    """Throttled every time: tried max_attempts times, then logged; the records come again."""
    from streambridge import RetryPolicy  # noqa: PLC0415

    processor = KclRecordProcessor(
        SETTINGS, FlakySink(0), retry=RetryPolicy(max_attempts=3), sleep=lambda _s: None
    )
    checkpointer = Checkpointer(["ThrottlingException"] * 5)
    processor.process_records(records_input(checkpointer, kcl_record("3", doc(3))))
    assert checkpointer.calls == [("3", 0)] * 3
    assert processor.checkpointed is None


# --------------------------------------------------------------------------- the command, in process


def test_the_command_speaks_the_protocol_in_process(
    kclpy: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A scripted daemon on stdin: the child's answers on stdout, in order; exit 0 at EOF."""
    from streambridge.cli import main  # noqa: PLC0415

    out = tmp_path / "events.jsonl"
    script = [
        {"action": "initialize", "shardId": SHARD, "sequenceNumber": "X", "subSequenceNumber": 0},
        process(kcl_record("1", doc(1))),
        {"action": "checkpoint", "sequenceNumber": "1", "subSequenceNumber": 0, "error": None},
        {"action": "shardEnded"},
        {"action": "checkpoint", "sequenceNumber": None, "subSequenceNumber": None},
    ]
    monkeypatch.setattr(sys, "stdin", io.StringIO("".join(json.dumps(m) + "\n" for m in script)))
    code = main(["kcl", "--stream", "clicks", "--event-key", "name", "--output", str(out)])
    said = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert code == 0
    assert said == [
        {"action": "status", "responseFor": "initialize"},
        {"action": "checkpoint", "sequenceNumber": "1", "subSequenceNumber": 0},
        {"action": "status", "responseFor": "processRecords"},
        {"action": "checkpoint", "sequenceNumber": None, "subSequenceNumber": None},
        {"action": "status", "responseFor": "shardEnded"},
    ]
    assert [e["properties"] for e in events_in(out)] == [{}]


def test_the_command_says_what_to_install_without_amazon_kclpy(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """No amazon-kclpy: a usage error naming the extra, not a traceback."""
    from streambridge.cli import main  # noqa: PLC0415

    monkeypatch.setitem(sys.modules, "amazon_kclpy", None)
    assert main(["kcl", "--stream", "s", "--event-key", "e", "--output", "x"]) == 2
    assert "pip install 'streambridge[kcl]'" in capsys.readouterr().err


def test_the_command_refuses_a_negative_patience(
    kclpy: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """--sink-patience below zero is a usage error."""
    from streambridge.cli import main  # noqa: PLC0415

    argv = ["kcl", "--stream", "s", "--event-key", "e", "--output", "x", "--sink-patience", "-1"]
    assert main(argv) == 2
    assert "--sink-patience" in capsys.readouterr().err
