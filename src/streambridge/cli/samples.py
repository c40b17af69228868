"""``streambridge samples``: the sample mParticle batches shipped with the package, as JSON lines.

The samples are pretty-printed JSON files inside the package (one batch each); ``forward``
reads JSON lines, so a newcomer writes them out with this and forwards the file.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from streambridge._demo import sample_batches
from streambridge.cli._common import EXIT_OK, open_output

__all__ = ["add_parser"]


def add_parser(commands: Any) -> None:
    """Add the ``samples`` command to ``commands`` (argparse sub-parsers)."""
    samples = commands.add_parser(
        "samples",
        help="write the sample mParticle batches as JSON lines (one batch a line), to forward",
    )
    samples.add_argument(
        "--output", type=Path, help="the file to write (created 0600; default: stdout)"
    )
    samples.add_argument(
        "--good-only", action="store_true", help="leave out the batch of odd and bad data"
    )
    samples.add_argument("--force", action="store_true", help="replace a non-empty --output file")
    samples.set_defaults(run=_samples)


def _samples(args: argparse.Namespace) -> int:
    lines = [
        json.dumps(batch, ensure_ascii=False, separators=(",", ":")) + "\n"
        for name, batch in sample_batches()
        if not (args.good_only and name.startswith("odd"))
    ]
    if args.output is None:
        sys.stdout.writelines(lines)
        return EXIT_OK
    with open_output(args.output, force=args.force) as out:
        out.writelines(lines)
    return EXIT_OK
