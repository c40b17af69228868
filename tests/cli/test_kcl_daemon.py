"""``streambridge kcl-daemon``: the daemon's properties and command line, made (issue 21, part 1).

Before, users wrote the MultiLangDaemon's Java class path and properties by hand from the
docs. The command writes the properties from the child's own options and prints the daemon's
command line; the real daemon (amazon-kclpy's jars, Java) reads them.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from streambridge.testing import LocalAWS
from tests.cli.test_cli import _env, run  # noqa: F401 - the env fixture

CHILD = ["--stream", "clicks", "--event-key", "properties.eventName", "--output", "events.jsonl"]


def properties(path: Path) -> dict[str, str]:
    """A properties file's keys and values."""
    lines = [line for line in path.read_text().splitlines() if not line.startswith("#")]
    pairs = (line.split("=", 1) for line in lines if "=" in line)
    return {key.strip(): value.strip() for key, value in pairs}


SAMPLE = Path(__file__).resolve().parents[2] / "docs" / "streambridge-kcl.properties"


def test_the_sample_properties_are_what_the_command_in_them_writes(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """docs/streambridge-kcl.properties = what its header's kcl-daemon command writes."""
    reason = daemon_ready()
    if reason is not None:
        pytest.skip(reason)
    header: list[str] = []
    for line in SAMPLE.read_text().splitlines()[1:]:
        if not line.startswith("#   "):
            if header:
                break
            continue
        header.append(line[1:].strip().rstrip("\\").strip())
    argv = shlex.split(" ".join(header))
    assert argv[:2] == ["streambridge", "kcl-daemon"]
    target = tmp_path / "kcl.properties"
    argv = [arg if arg != "streambridge-kcl.properties" else str(target) for arg in argv[1:]]
    code, _, err = run(capsys, *argv)
    assert 0 == code, err
    sample, written = properties(SAMPLE), properties(target)
    prefix = f"{sys.executable} -m "  # the sample names the installed script instead
    assert sample.pop("executableName") == written.pop("executableName").removeprefix(prefix)
    version = f"python/{sys.version_info[0]}.{sys.version_info[1]}"
    assert (sample.pop("processingLanguage"), written.pop("processingLanguage")) == (
        "python/3.11",
        version,
    )  # only the user agent: this interpreter's version
    assert sample == written
    assert "POLLING" == written["retrievalMode"]  # as iam.kcl_policy's default


def daemon_ready() -> str | None:
    """Why the real daemon cannot run here (None: it can)."""
    try:
        from streambridge.cli.kcl_daemon import jars_directory  # noqa: PLC0415

        jars_directory()
    except Exception as exc:  # noqa: BLE001 - said in the skip
        return f"the KCL's jars are not installed ({exc})"
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        return "no Java"
    return None


def test_the_properties_run_this_child_with_the_options_given(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """ExecutableName is this interpreter's `streambridge kcl` with the options after --."""
    reason = daemon_ready()
    if reason is not None:
        pytest.skip(reason)
    target = tmp_path / "kcl.properties"
    argv = ["kcl-daemon", "--application-name", "clicks-to-posthog", "--properties", str(target)]
    argv += ["--region", "eu-west-1", "--set", "failoverTimeMillis=2000", "--", *CHILD]
    code, out, err = run(capsys, *argv)
    assert 0 == code, err
    written = properties(target)
    assert (
        " ".join([sys.executable, "-m", "streambridge", "kcl", *CHILD])
        == (written["executableName"])
    )
    assert ("clicks", "clicks-to-posthog", "eu-west-1") == (
        written["streamName"], written["applicationName"], written["regionName"],
    )  # fmt: skip
    assert "2000" == written["failoverTimeMillis"]
    command = shlex.split(out.strip())
    assert command[-2:] == ["--properties-file", str(target.resolve())]
    assert command[command.index("-cp") + 1].endswith(f"jars{os.sep}*")


@pytest.mark.parametrize(
    ("child", "says"),
    [
        ([], "give the child's options"),
        (["--event-key", "name", "--output", "x"], "stream"),
        (["--stream", "s", "--event-key", "e", "--posthog-key", "phc_secret"], "POSTHOG_API_KEY"),
        (["--stream", "s", "--event-key", "a b", "--output", "x"], "splits executableName"),
        (["--stream", "s", "--no-such-option"], "not those of `streambridge kcl`"),
    ],
)
def test_what_the_daemon_could_not_run_is_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, child: list[str], says: str
) -> None:
    """No child options, no stream, a key on the line, a space, an unknown option: exit 2."""
    target = tmp_path / "kcl.properties"
    argv = ["kcl-daemon", "--application-name", "a", "--properties", str(target)]
    code, _, err = run(capsys, *argv, "--region", "us-east-1", "--", *child)
    assert (2, True) == (code, says in err), err
    assert "phc_secret" not in err
    assert not target.exists()


@pytest.mark.integration
def test_the_real_daemon_reads_the_properties(
    capsys: pytest.CaptureFixture[str], aws: LocalAWS, tmp_path: Path
) -> None:
    """The printed command starts the KCL's MultiLangDaemon on our properties and child.

    It names the child it will run for the stream and creates its lease table in the local
    AWS's DynamoDB (named by --application-name); then it is stopped. (Reading the stream
    needs a Kinesis endpoint that speaks HTTP/2, which moto does not: issue 21, part 2.)
    """
    reason = daemon_ready()
    if reason is not None:
        pytest.skip(reason)
    target = tmp_path / "kcl.properties"
    argv = ["kcl-daemon", "--application-name", "it", "--properties", str(target)]
    argv += ["--region", aws.region, "--set", "metricsLevel=NONE", "--set", "retrievalMode=POLLING"]
    argv += ["--set", f"dynamoDBEndpoint={aws.endpoint_url}", "--", *CHILD]
    code, out, err = run(capsys, *argv)
    assert 0 == code, err
    env = {**os.environ, **aws.environment(), "AWS_EC2_METADATA_DISABLED": "true"}
    daemon = subprocess.Popen(  # noqa: S603 - the command printed above
        shlex.split(out.strip()),
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    seen: list[str] = []
    try:
        deadline = time.monotonic() + 60
        assert daemon.stdout is not None
        for line in daemon.stdout:
            seen.append(line)
            if "Created new lease table" in line or time.monotonic() > deadline:
                break
    finally:
        daemon.terminate()
        daemon.wait(30)
        if daemon.stdout is not None:
            daemon.stdout.close()
    running = next((line for line in seen if "to process stream clicks with" in line), "")
    assert " ".join([sys.executable, "-m", "streambridge", "kcl", *CHILD]) in running, seen[-20:]
    assert "it" in aws.client("dynamodb").list_tables()["TableNames"]
