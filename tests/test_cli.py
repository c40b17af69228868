"""The streambridge command: the README's demo, end to end on the embedded local AWS."""

from __future__ import annotations

import subprocess
import sys

import pytest

from streambridge.__main__ import main


def test_demo_runs_and_reports(capsys: pytest.CaptureFixture[str]) -> None:
    """`streambridge demo` forwards the samples and reads back exactly what it sent."""
    assert 0 == main(["demo"])
    out = capsys.readouterr().out
    assert "127.0.0.1" in out
    assert "sent 5 records" in out
    assert "read back from S3: 5 records, 52 events" in out
    assert out.rstrip().endswith("demo OK")


def test_module_entry_point() -> None:
    """`python -m streambridge` is the same command (bad arguments: usage, exit 2)."""
    done = subprocess.run(
        [sys.executable, "-m", "streambridge", "nope"], capture_output=True, text=True, check=False
    )
    assert 2 == done.returncode
    assert "invalid choice" in done.stderr
