"""Reliability table: what arrives, twice, failed (with a reason) or lost, under injected faults.

Run:  python bench/reliability.py            (needs the `dev` extra: moto, posthog)
      python bench/reliability.py --quick    (smaller loads)

Every scenario runs against the local moto server on 127.0.0.1, with faults injected at the
HTTP level (botocore's real parser reads every spoilt answer), hostile input, a local PostHog
capture API that goes down or refuses the key, and importer processes killed with SIGKILL.
"lost" is what was put in and is neither delivered nor reported (failed, skipped, rejected,
dead-lettered or counted as not delivered): it must be 0.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import attrs
from botocore.awsrequest import AWSPreparedRequest, AWSResponse

from streambridge import (
    FirehoseForwarder,
    ForwarderSettings,
    ImporterSettings,
    KinesisImporter,
    PostHogSink,
    RetryPolicy,
)
from streambridge.testing import (
    MANGLES,
    EveryNth,
    FakeClock,
    Fault,
    FaultInjector,
    LocalAWS,
    MalformedAnswer,
    PartialFailure,
    local_aws,
    local_posthog,
)


@attrs.frozen
class Cycle(Fault):
    """Each call, the next fault of a list, round and round."""

    faults: Sequence[Fault]
    _count: list[int] = attrs.field(factory=lambda: [0], init=False)

    def respond(
        self, injector: FaultInjector, operation: str, request: AWSPreparedRequest
    ) -> AWSResponse | None:
        """The next fault's answer."""
        self._count[0] += 1
        return self.faults[self._count[0] % len(self.faults)].respond(injector, operation, request)


@attrs.frozen
class Row:
    """One line of the table."""

    scenario: str
    load: str
    faults: str
    delivered: int
    duplicates: int
    reported: int
    lost: int


def counts(expected: set[int], seen: Counter[int], reported: set[int]) -> tuple[int, int, int]:
    """(delivered, duplicates, lost) of the numbered items."""
    delivered = len(expected & set(seen))
    duplicates = sum(seen.values()) - len(seen)
    lost = len(expected - set(seen) - reported)
    return delivered, duplicates, lost


def mparticle(count: int, poison_every: int = 0) -> list[dict[str, Any]]:
    """Batches of 20 events numbered 0..count-1; every poison_every-th event is unsendable."""
    poisons: list[Any] = ["\ud800", 10**5000, [[[[[]]]]]]
    deep: Any = 0
    for _ in range(3_000):
        deep = [deep]
    poisons[2] = deep
    out = []
    for start in range(0, count, 20):
        events = []
        for n in range(start, min(start + 20, count)):
            data: dict[str, Any] = {"event_name": "e", "n": n}
            if poison_every and n % poison_every == poison_every - 1:
                data["poison"] = poisons[n % 3]
            events.append({"event_type": "custom_event", "data": data})
        out.append({"message_id": f"m{start}", "events": events})
    return out


def forwarder_rows(aws: LocalAWS, count: int) -> list[Row]:
    """Forwarder: spoilt PutRecordBatch answers; poison events."""
    rows = []
    for name, every, poison, faults in [
        (
            "forwarder: malformed 200 answers",
            4,
            0,
            (
                "1 call in 4: a 200 cut short, not JSON, empty or foreign "
                "(hiding 10% throttled entries)"
            ),
        ),
        ("forwarder: poison events", 0, 100, "1% events: surrogate, 5000 digits, 3000 deep"),
    ]:
        aws.reset()
        aws.create_delivery_stream("events")
        client = aws.client("firehose")
        with FaultInjector(client) as injector:
            if every:
                mangles = [
                    MalformedAnswer(m, inner=PartialFailure(0.1, seed=i))
                    for i, m in enumerate(MANGLES)
                ]
                injector.always("PutRecordBatch", EveryNth(every, Cycle(mangles)))
            forwarder = FirehoseForwarder(
                client,
                ForwarderSettings(delivery_stream_name="events", send_as_batch=False),
                sleep=lambda _: None,
            )
            result = forwarder.forward_many(mparticle(count, poison))
        seen = Counter(e["data"]["n"] for r in aws.delivered("events") for e in r["events"])
        reported: set[int] = set()
        for failed in result.failed:
            reported.add(int(failed.data.split(b"'n': ")[1].split(b",")[0]))
        delivered, duplicates, lost = counts(set(range(count)), seen, reported)
        rows.append(
            Row(name, f"{count:,} events", faults, delivered, duplicates, len(result.failed), lost)
        )
    return rows


def kinesis_record(n: int, poison: bool) -> bytes:
    """A record for event n (unusable when poison)."""
    if not poison:
        return json.dumps({"name": "click", "n": n, "user": f"u{n % 9}"}).encode()
    kind = n % 3
    if kind == 0:
        return b"[" * 1_100 + b"]" * 1_100
    if kind == 1:
        return b'{"name": "click", "n": %d, "ts": 1%s}' % (n, b"0" * 400)
    return b'{"name": "click\\ud800", "n": %d}' % n


IMPORT = ImporterSettings(
    stream_name="clicks",
    event_key="name",
    additional_property_mappings="n:n,ts:timestamp,user:distinct_id",
    start_position="TRIM_HORIZON",
    records_per_call=200,
)


def importer_rows(aws: LocalAWS, count: int) -> list[Row]:
    """Importer: spoilt GetRecords/GetShardIterator/ListShards answers; poison records."""
    rows = []
    for name, malformed, poison_every, faults in [
        (
            "importer: malformed 200 answers",
            True,
            0,
            (
                "200s cut short (GetRecords 1 in 5), not JSON (GetShardIterator 1 in 2), "
                "empty (ListShards 1 in 2)"
            ),
        ),
        ("importer: poison records", False, 100, "1%: 1,100 deep, 400-digit ts, surrogate"),
    ]:
        aws.reset()
        aws.create_stream("clicks", shards=4)
        aws.put_records(
            "clicks",
            [kinesis_record(n, bool(poison_every) and n % poison_every == 7) for n in range(count)],
        )
        client = aws.client("kinesis")
        clock = FakeClock()
        events: list[Any] = []
        skipped: list[Any] = []
        with FaultInjector(client) as injector:
            if malformed:
                injector.always("GetRecords", EveryNth(5, MalformedAnswer("truncate")))
                injector.always("GetShardIterator", EveryNth(2, MalformedAnswer("not_json")))
                injector.always("ListShards", EveryNth(2, MalformedAnswer("empty")))
            importer = KinesisImporter(
                client,
                IMPORT,
                sink=events.extend,
                on_skip=skipped.append,
                clock=clock,
                sleep=clock.sleep,
            )
            importer.run(until_caught_up=True, max_polls=10_000)
        seen = Counter(int(e.properties["n"]) for e in events)
        reported = {n for n in range(count) if poison_every and n % poison_every == 7}
        delivered, duplicates, lost = counts(set(range(count)), seen, reported)
        rows.append(
            Row(
                name,
                f"{count:,} records, 4 shards",
                faults,
                delivered,
                duplicates,
                len(skipped),
                lost,
            )
        )
    return rows


def posthog_rows(aws: LocalAWS, count: int) -> list[Row]:
    """Importer -> PostHogSink: an outage longer than the sink's budget, then a revoked key."""
    rows = []
    aws.reset()
    aws.create_stream("clicks", shards=2)
    aws.put_records("clicks", [kinesis_record(n, False) for n in range(count)])
    with local_posthog() as posthog:
        posthog.answer(*[503] * 40)
        clock = FakeClock()
        sink = PostHogSink(
            api_key="k",
            host=posthog.url,
            retry=RetryPolicy(max_attempts=4),
            sleep=clock.sleep,
            clock=clock,
        )
        importer = KinesisImporter(
            aws.client("kinesis"), IMPORT, sink=sink, clock=clock, sleep=clock.sleep
        )
        totals = importer.run(until_caught_up=True)
        seen = Counter(int(e["properties"]["n"]) for e in posthog.events)
        delivered, duplicates, lost = counts(set(range(count)), seen, set())
        rows.append(
            Row(
                "PostHog: 503 outage",
                f"{count:,} records, 2 shards",
                f"first 40 requests 503 ({totals.sink_failures} sink calls failed whole)",
                delivered,
                duplicates,
                totals.undelivered,
                lost,
            )
        )
    return rows


def cli(*argv: str, env: dict[str, str]) -> subprocess.Popen[str]:
    """A `streambridge` subprocess."""
    return subprocess.Popen(
        [sys.executable, "-m", "streambridge", *argv],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def signal_rows(aws: LocalAWS, count: int, tmp: Path) -> list[Row]:
    """SIGTERM during a PostHog outage, a revoked key, then runs that finish the job."""
    rows = []
    env = {**os.environ, **aws.environment()}
    for name, status, how in [
        ("CLI import: SIGTERM in an outage", 503, "PostHog 503, then SIGTERM; a second run"),
        ("CLI import: revoked key (401)", 401, "PostHog 401: exit 4; a run with a good key"),
    ]:
        aws.reset()
        aws.create_stream("clicks", shards=1)
        aws.put_records("clicks", [kinesis_record(n, False) for n in range(count)])
        db = tmp / f"{status}.db"
        with local_posthog() as posthog:
            posthog.status = status
            argv = [
                "import",
                "--stream",
                "clicks",
                "--event-key",
                "name",
                "--mappings",
                "n:n",
                "--start",
                "TRIM_HORIZON",
                "--checkpoints",
                str(db),
                "--posthog-host",
                posthog.url,
            ]
            env["POSTHOG_API_KEY"] = "k"
            first = cli(*argv, env=env)
            if status == 503:
                while posthog.requests < 2:
                    time.sleep(0.05)
                first.send_signal(signal.SIGTERM)
            _, err = first.communicate(timeout=60)
            reported = int(err.split("not delivered ")[1].split(";")[0]) if status == 503 else count
            exit_code = first.returncode
            posthog.status = 200
            second = cli(*argv, "--until-caught-up", env=env)
            second.communicate(timeout=120)
            seen = Counter(int(e["properties"]["n"]) for e in posthog.events)
        delivered, duplicates, lost = counts(set(range(count)), seen, set())
        rows.append(
            Row(
                name,
                f"{count:,} records",
                f"{how} (first exit {exit_code})",
                delivered,
                duplicates,
                reported,
                lost,
            )
        )
    return rows


def crash_rows(aws: LocalAWS, count: int, tmp: Path, kills: int) -> list[Row]:
    """SIGKILL at random points of an import with SQLite checkpoints and an fsyncing sink."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.cli.test_crash import IMPORTER  # noqa: PLC0415 - the same script as the test

    aws.reset()
    aws.create_stream("crash", shards=2)
    aws.put_records("crash", [{"name": "e", "n": n} for n in range(count)])
    db, out = tmp / "crash.db", tmp / "crash.jsonl"
    argv = [sys.executable, "-c", IMPORTER, str(db), str(out), aws.endpoint_url]
    rng = random.Random(11)
    killed = 0

    def lines() -> int:
        return out.read_bytes().count(b"\n") if out.exists() else 0

    for _ in range(kills):
        target = lines() + rng.randint(50, max(51, count // kills))
        process = subprocess.Popen(argv, stderr=subprocess.PIPE)
        while process.poll() is None and lines() < target:
            time.sleep(0.002)
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            killed += 1
        process.communicate(timeout=60)
    subprocess.run(argv, check=True, capture_output=True, timeout=300)
    seen: Counter[int] = Counter()
    for line in out.read_bytes().splitlines():
        with contextlib.suppress(ValueError):  # a line cut by SIGKILL
            seen[json.loads(line)["properties"]["n"]] += 1
    delivered, duplicates, lost = counts(set(range(count)), seen, set())
    return [
        Row(
            "importer: crash-restart",
            f"{count:,} records, 2 shards",
            f"{killed} x SIGKILL at random points",
            delivered,
            duplicates,
            0,
            lost,
        )
    ]


def forward_kill_rows(aws: LocalAWS, count: int, tmp: Path, kills: int) -> list[Row]:
    """SIGKILLs of `forward` with calls in flight, then a run to the end; with and without
    --checkpoints, killed at the same moments (0.6-1 s after each start).

    The issue's black-box run: a kill left events in neither S3 nor the dead letters, and the
    only recovery, a whole rerun, duplicated most of the input. With ``--checkpoints`` (a
    file, and an S3 prefix) a rerun goes on from the last settled batch.
    """
    rows = []
    env = {**os.environ, **aws.environment()}
    batches = [{"events": [{"event_type": "custom_event", "data": {"n": n}}]} for n in range(count)]
    body = b"".join(json.dumps(b).encode() + b"\n" for b in batches)
    source = tmp / "forward.jsonl"
    source.write_bytes(body)
    cases = [
        ("forward FILE: kills, rerun whole", str(source), False),
        ("forward FILE --checkpoints: kills, rerun", str(source), True),
        ("forward s3:// --checkpoints: kills, rerun", "s3://exports/2026/", True),
    ]
    for name, where, resumable in cases:
        aws.reset()
        aws.create_delivery_stream("resume")
        s3 = aws.client("s3")
        s3.create_bucket(Bucket="exports")
        for part in range(4):
            chunk = body.splitlines(keepends=True)[part * count // 4 : (part + 1) * count // 4]
            s3.put_object(Bucket="exports", Key=f"2026/{part:02}.json", Body=b"".join(chunk))
        state = tmp / f"{name.split(':')[0].replace(' ', '-')}.state"
        state.unlink(missing_ok=True)
        argv = ["forward", where, "--stream", "resume", "--quiet"]
        argv += ["--checkpoints", str(state)] if resumable else []
        killed = 0
        delays = random.Random(5)  # the same moments for every case
        for _ in range(kills):
            process = cli(*argv, env=env)
            try:
                process.wait(timeout=delays.uniform(0.6, 1.0))
            except subprocess.TimeoutExpired:
                process.send_signal(signal.SIGKILL)
                killed += 1
            process.communicate(timeout=60)
        cli(*argv, env=env).communicate(timeout=300)
        seen = Counter(r["events"][0]["data"]["n"] for r in aws.delivered("resume"))
        delivered, duplicates, lost = counts(set(range(count)), seen, set())
        rows.append(
            Row(name, f"{count:,} batches", f"{killed} x SIGKILL", delivered, duplicates, 0, lost)
        )
    return rows


def _import_argv(*extra: str) -> list[str]:
    return ["import", "--stream", "clicks", "--event-key", "name", "--mappings", "n:n",
            "--start", "TRIM_HORIZON", *extra]  # fmt: skip


def _numbers(path: Path, key: str = "n") -> Counter[int]:
    """The numbers of the events (or dead letters' records) in a JSON-lines file."""
    seen: Counter[int] = Counter()
    for line in path.read_bytes().splitlines() if path.exists() else []:
        item = json.loads(line)
        if "properties" in item:
            seen[int(item["properties"][key])] += 1
        else:  # a dead letter: the number is in its data
            seen[int(item["data"].split(":")[1])] += 1
    return seen


def full_disk_rows(aws: LocalAWS, count: int, tmp: Path) -> list[Row]:
    """Dead letters on a full disk (/dev/full): exit 5, nothing checkpointed past them; rerun."""
    if not Path("/dev/full").exists():
        return []
    env = {**os.environ, **aws.environment()}
    aws.reset()
    aws.create_stream("clicks", shards=2)
    poison = {n for n in range(count) if n % 10 == 9}
    aws.put_records(
        "clicks",
        [f"poison:{n}".encode() if n in poison else kinesis_record(n, False) for n in range(count)],
    )
    db, out, dead = tmp / "full.db", tmp / "full.jsonl", tmp / "full-dead.jsonl"
    argv = _import_argv("--checkpoints", str(db), "--output", str(out), "--until-caught-up")
    first = subprocess.run(
        [sys.executable, "-m", "streambridge", *argv, "--dead-letter", "/dev/full"],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    subprocess.run(
        [sys.executable, "-m", "streambridge", *argv, "--dead-letter", str(dead)],
        env=env, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    seen, kept = _numbers(out), set(_numbers(dead))
    delivered, duplicates, lost = counts(set(range(count)) - poison, seen, set())
    lost += len(poison - kept)
    faults = (
        f"10% poison; first run's dead letters on /dev/full (exit {first.returncode}), then a file"
    )
    return [
        Row("CLI import: full disk", f"{count:,} records, 2 shards", faults,
            delivered, duplicates, len(kept & poison), lost)
    ]  # fmt: skip


def closed_pipe_rows(aws: LocalAWS, count: int, tmp: Path) -> list[Row]:
    """``import | head -5`` (a reader that leaves), then a run that finishes the job."""
    env = {**os.environ, **aws.environment()}
    aws.reset()
    aws.create_stream("clicks", shards=4)
    aws.put_records("clicks", [kinesis_record(n, False) for n in range(count)])
    db, rest = tmp / "pipe.db", tmp / "pipe.jsonl"
    argv = _import_argv("--checkpoints", str(db), "--until-caught-up")
    head = cli(*argv, env=env)
    assert head.stdout is not None
    got = [head.stdout.readline() for _ in range(5)]
    head.stdout.close()
    head.wait(timeout=120)
    assert head.stderr is not None
    head.stderr.close()
    subprocess.run(
        [sys.executable, "-m", "streambridge", *argv, "--output", str(rest)],
        env=env, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    seen = _numbers(rest) + Counter(int(json.loads(g)["properties"]["n"]) for g in got)
    delivered, duplicates, lost = counts(set(range(count)), seen, set())
    how = f"a reader that leaves after 5 lines (exit {head.returncode}), then a second run"
    return [Row("CLI import into `head -5`", f"{count:,} records, 4 shards", how,
                delivered, duplicates, 0, lost)]  # fmt: skip


def quiet_pipe_rows(aws: LocalAWS, count: int) -> list[Row]:
    """forward reading a pipe that goes quiet, then SIGTERM: what was read is delivered."""
    aws.reset()
    aws.create_delivery_stream("events")
    process = subprocess.Popen(
        [sys.executable, "-m", "streambridge", "forward", "--stream", "events",
         "--flush-interval", "60"],
        env={**os.environ, **aws.environment()},
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert process.stdin is not None
    for batch in mparticle(count):
        process.stdin.write(json.dumps(batch).encode() + b"\n")
    process.stdin.flush()
    time.sleep(2.0)  # read; the pipe then stays open and quiet
    process.send_signal(signal.SIGTERM)
    code = process.wait(timeout=60)
    for stream in (process.stdin, process.stdout, process.stderr):
        if stream is not None:
            stream.close()
    seen = Counter(e["data"]["n"] for r in aws.delivered("events") for e in r["events"])
    delivered, duplicates, lost = counts(set(range(count)), seen, set())
    how = f"SIGTERM while the pipe is open and quiet (exit {code})"
    return [Row("CLI forward: signal on a quiet pipe", f"{count:,} events", how,
                delivered, duplicates, 0, lost)]  # fmt: skip


def lambda_rows(aws: LocalAWS, count: int) -> list[Row]:
    """The zero-code path's handler: poison records to S3; a missing bucket means a retry."""
    import base64  # noqa: PLC0415

    from streambridge import ImporterSettings, make_handler  # noqa: PLC0415
    from streambridge.deadletter_remote import S3DeadLetters  # noqa: PLC0415

    aws.reset()
    s3 = aws.client("s3")
    arn = "arn:aws:kinesis:us-east-1:123456789012:stream/clicks"
    poison = {n for n in range(count) if n % 4 == 3}
    records: list[dict[str, Any]] = [
        {"kinesis": {"sequenceNumber": str(10_000 + n), "data": base64.b64encode(
            f"poison:{n}".encode() if n in poison else kinesis_record(n, False)).decode()},
         "eventID": f"shardId-000000000000:{10_000 + n}", "eventSourceARN": arn}
        for n in range(count)
    ]  # fmt: skip
    settings = ImporterSettings(stream_name="clicks", event_key="name",
                                additional_property_mappings="n:n")  # fmt: skip
    rows = []
    for name, bucket_first in [("Lambda: poison records, S3 dead letters", True),
                               ("Lambda: dead-letter bucket missing", False)]:  # fmt: skip
        aws.reset()
        s3.create_bucket(Bucket="other")
        if bucket_first:
            s3.create_bucket(Bucket="dead")
        events: list[Any] = []
        handler = make_handler(settings, events.extend,
                               on_skip=S3DeadLetters(s3, "s3://dead/lambda/"))  # fmt: skip
        batch = records
        invocations = 0
        while batch:  # what the event source mapping does: retry from the lowest failure
            invocations += 1
            failed = [f["itemIdentifier"] for f in handler({"Records": batch})["batchItemFailures"]]
            if not bucket_first and invocations == 1:
                s3.create_bucket(Bucket="dead")  # the operator fixes it; the retry goes through
            lowest = min((int(f) for f in failed), default=None)
            batch = [r for r in batch if lowest is not None and
                     int(r["kinesis"]["sequenceNumber"]) >= lowest]  # fmt: skip
        kept: set[int] = set()
        for item in s3.list_objects_v2(Bucket="dead").get("Contents", []):
            body = s3.get_object(Bucket="dead", Key=item["Key"])["Body"].read()
            kept |= {int(json.loads(line)["data"].split(":")[1]) for line in body.splitlines()}
        seen = Counter(int(e.properties["n"]) for e in events)
        delivered, duplicates, lost = counts(set(range(count)) - poison, seen, set())
        lost += len(poison - kept)
        how = f"25% poison; {invocations} invocation(s)" + ("" if bucket_first else
              ", the first reporting the poison for a retry (no bucket)")  # fmt: skip
        rows.append(Row(name, f"{count:,} records", how, delivered, duplicates, len(kept), lost))
    return rows


def sqs_rows(aws: LocalAWS, count: int, tmp: Path) -> list[Row]:
    """forward --dead-letter <an SQS queue URL>: records too large go there, with their data."""
    aws.reset()
    aws.create_delivery_stream("events")
    sqs = aws.client("sqs")
    url = sqs.create_queue(QueueName="dead")["QueueUrl"]
    big = {n for n in range(count) if n % 10 == 9}
    source = tmp / "sqs.jsonl"
    lines = []
    for n in range(count):
        data: dict[str, Any] = {"n": n, **({"bad": "\ud800"} if n in big else {})}
        lines.append(json.dumps({"events": [{"event_type": "custom_event", "data": data}]}))
    source.write_text("\n".join(lines) + "\n")
    done = subprocess.run(
        [sys.executable, "-m", "streambridge", "forward", "--stream", "events", "--dead-letter",
         url, "--settings", str(_settings(tmp)), str(source)],
        env={**os.environ, **aws.environment()}, capture_output=True, text=True, timeout=300,
        check=False,
    )  # fmt: skip
    kept: set[int] = set()
    while got := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        for message in got:
            text = json.loads(message["Body"])["data"]  # the record as readable text: 'n': 9
            kept.add(int(text.split("'n': ")[1].split(",")[0].split("}")[0]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    seen = Counter(e["data"]["n"] for r in aws.delivered("events") for e in r["events"])
    delivered, duplicates, lost = counts(set(range(count)) - big, seen, set())
    lost += len(big - kept)
    how = f"10% events hold a lone surrogate: records that cannot be sent (exit {done.returncode})"
    return [Row("CLI forward: dead letters to SQS", f"{count:,} events", how,
                delivered, duplicates, len(kept), lost)]  # fmt: skip


def _settings(tmp: Path) -> Path:
    """mParticle settings that make a record of each batch, so that a big event fails alone."""
    path = tmp / "mparticle.json"
    path.write_text(json.dumps({"Delivery Stream Name": "events", "Send as Batch": "True"}))
    return path


_TIMESTAMPS = """
import importlib.util, json, sys, types
src = sys.argv[1]
package = types.ModuleType("streambridge"); package.__path__ = [src]
sys.modules["streambridge"] = package
for name in ("errors", "_util"):
    spec = importlib.util.spec_from_file_location(f"streambridge.{name}", f"{src}/{name}.py")
    module = importlib.util.module_from_spec(spec); sys.modules[spec.name] = module
    spec.loader.exec_module(module)
parse = sys.modules["streambridge._util"].parse_iso_datetime
texts = json.load(sys.stdin)
print(json.dumps([None if (d := parse(t)) is None else d.isoformat() for t in texts]))
"""


def interpreter_rows(count: int) -> list[Row]:
    """The same producer timestamps read on every Python pyenv has from 3.10: alike, or lost."""
    rng = random.Random(18)
    forms = ["%Y-%m-%dT%H:%M:%S.{ns}Z", "%Y-%m-%dT%H:%M:%S.{cs}Z", "%Y%m%dT%H%M%SZ",
             "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S+02:00", "%Y-%m-%dT%H:%M:%S.{us}+0530",
             "%Y-%m-%d"]  # fmt: skip
    texts = []
    for _ in range(count):
        moment = datetime(2020, 1, 1, tzinfo=timezone.utc) + timedelta(seconds=rng.randrange(10**8))
        form = rng.choice(forms).format(
            ns=f"{rng.randrange(10**9):09d}", cs=f"{rng.randrange(100):02d}",
            us=f"{rng.randrange(10**6):06d}",
        )  # fmt: skip
        texts.append(moment.strftime(form))
    src = str(Path(__file__).resolve().parents[1] / "src" / "streambridge")
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    rows = []
    expected: list[Any] | None = None
    for version in ("3.11", "3.10", "3.12", "3.13"):
        found = sorted(root.glob(f"{version}.*/bin/python3"))
        python = str(found[-1]) if found else (sys.executable if version == "3.11" else "")
        if not python:
            continue
        done = subprocess.run(
            [python, "-c", _TIMESTAMPS, src], input=json.dumps(texts), capture_output=True,
            text=True, timeout=120, check=True,
        )  # fmt: skip
        read = json.loads(done.stdout)
        expected = read if expected is None else expected
        alike = sum(a == b and a is not None for a, b in zip(read, expected, strict=True))
        rows.append(Row(f"timestamps on Python {version}", f"{count:,} timestamps",
                        "Go/Java nanoseconds, centiseconds, basic format, offsets, dates",
                        alike, 0, 0, count - alike))  # fmt: skip
    return rows


def table(rows: list[Row]) -> str:
    """The rows as a Markdown table."""
    head = "| scenario | load | faults injected | delivered | duplicates | reported failed | lost |"
    lines = [head, "|---|---|---|---:|---:|---:|---:|"]
    lines += [
        f"| {r.scenario} | {r.load} | {r.faults} | {r.delivered:,} | {r.duplicates:,} | "
        f"{r.reported:,} | **{r.lost}** |"
        for r in rows
    ]
    return "\n".join(lines)


def main() -> None:
    """Run every scenario and print the table."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--only", choices=["forward-kills"], help="one scenario group instead of them all"
    )
    options = parser.parse_args()
    scale = 1 if not options.quick else 5
    rows: list[Row] = []
    with local_aws() as aws, tempfile.TemporaryDirectory() as tmp:
        started = time.monotonic()
        if options.only == "forward-kills":
            rows += forward_kill_rows(aws, 40_000 // scale, Path(tmp), kills=3)
        else:
            rows += forwarder_rows(aws, 20_000 // scale)
            rows += importer_rows(aws, 10_000 // scale)
            rows += posthog_rows(aws, 5_000 // scale)
            rows += signal_rows(aws, 1_000 // scale, Path(tmp))
            rows += crash_rows(aws, 5_000 // scale, Path(tmp), kills=8)
            rows += forward_kill_rows(aws, 40_000 // scale, Path(tmp), kills=3)
            rows += full_disk_rows(aws, 1_000 // scale, Path(tmp))
            rows += closed_pipe_rows(aws, 2_000 // scale, Path(tmp))
            rows += quiet_pipe_rows(aws, 1_000 // scale)
            rows += lambda_rows(aws, 400 // scale)
            rows += sqs_rows(aws, 1_000 // scale, Path(tmp))
            rows += interpreter_rows(10_000 // scale)
    print(table(rows))
    print(
        f"\n{len(rows)} scenarios in {time.monotonic() - started:.0f} s; "
        f"lost in total: {sum(r.lost for r in rows)}"
    )


if __name__ == "__main__":
    main()
