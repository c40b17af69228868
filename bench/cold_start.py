"""Lambda cold start (issue 19, part 4): importing our handler against Powertools' batch processor.

Run:  python bench/cold_start.py            (builds .peers/cold-ours and .peers/cold-powertools
                                             on first use: plain, non-editable installs)
      python bench/cold_start.py --runs 31

Each import is timed in a fresh interpreter (``time.perf_counter`` around the import
statement, the interpreter's own start-up excluded), the two sides interleaved; the medians
are compared. Ours: ``import streambridge.importer.aws_lambda`` (what the zero-code handler
string loads). Powertools: its batch processor and the Kinesis data class, what a Powertools
Kinesis handler imports (``BatchProcessor``, ``EventType``, ``process_partial_response``,
``KinesisStreamRecord``). Target: at most 0.7x.

Two settings, both timed: a bare interpreter (the issue's measure), and the Lambda runtime's
(AWS's ``awslambdaric`` bootstrap has imported ``json``, ``logging``, ``traceback``,
``importlib``, ``os``, ``sys`` and ``time`` before it imports the handler module, so
neither side pays for those there).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PEERS = ROOT / ".peers"
OURS = "import streambridge.importer.aws_lambda"
THEIRS = (
    "from aws_lambda_powertools.utilities.batch import "
    "BatchProcessor, EventType, process_partial_response\n"
    "from aws_lambda_powertools.utilities.data_classes.kinesis_stream_event import "
    "KinesisStreamRecord"
)
TIMED = "{}\nimport time\nstart = time.perf_counter()\n{}\nprint(time.perf_counter() - start)"
#: What awslambdaric's bootstrap.py imports (the standard library part) before the handler.
RUNTIME = "import importlib, json, logging, os, sys, time, traceback"


def venv(name: str, *packages: str) -> str:
    """A virtual environment under .peers/ with ``packages`` installed (built on first use)."""
    python = PEERS / name / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(PEERS / name)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *packages], check=True)
    return str(python)


def once(python: str, statement: str, prelude: str = "") -> float:
    """Seconds one fresh interpreter spends importing ``statement`` (after ``prelude``)."""
    out = subprocess.run(
        [python, "-c", TIMED.format(prelude, statement)],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout.strip())


def main() -> None:
    """Build the two environments, time the imports, print the ratio."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=21)
    args = parser.parse_args()
    ours = venv("cold-ours", str(ROOT))  # a plain install of this tree, not editable
    subprocess.run(  # this tree as it is now, whenever the environment was built
        [ours, "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall", str(ROOT)],
        check=True,
    )
    theirs = venv("cold-powertools", "aws-lambda-powertools")
    print("Lambda cold start: importing the handler in a fresh interpreter (medians)")
    for setting, prelude in (("a bare interpreter", ""), ("after the runtime's imports", RUNTIME)):
        mine: list[float] = []
        peer: list[float] = []
        for _ in range(args.runs):
            mine.append(once(ours, OURS, prelude))
            peer.append(once(theirs, THEIRS, prelude))
        a, b = statistics.median(mine), statistics.median(peer)
        print(f"   {setting}:")
        print(f"      Powertools batch processor + Kinesis data class  {b * 1000:6.1f} ms")
        print(f"      streambridge.importer.aws_lambda                 {a * 1000:6.1f} ms")
        print(f"      ratio {a / b:.2f} (target <= 0.7)")


if __name__ == "__main__":
    main()
