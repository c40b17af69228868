"""The ``streambridge`` command (``python -m streambridge``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    parser = argparse.ArgumentParser(
        prog="streambridge",
        description="Move analytics events between apps and AWS Kinesis.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser(
        "demo",
        help="forward the sample mParticle batches to an embedded local Firehose (no AWS account)",
    )
    args = parser.parse_args(argv)
    if args.command == "demo":
        try:
            from streambridge._demo import run_demo  # noqa: PLC0415

            return run_demo()
        except ModuleNotFoundError as exc:
            print(
                f"streambridge demo needs the 'local' extra ({exc.name} is missing): "
                "pip install 'streambridge[local]'",
                file=sys.stderr,
            )
            return 2
    return 2  # pragma: no cover - argparse rejects unknown commands


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
