"""A Lambda cold start loads only what the handler uses (issue 19, part 4).

``streambridge.importer.aws_lambda`` is what the zero-code handler string imports. In a fresh
interpreter, importing it must not load the forwarder, botocore, boto3, posthog-python,
requests, SQLite, the KCL processor or the package metadata (``__version__``, read on first
use): each was on the cold path before. Structure, not time: ``bench/cold_start.py`` times it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import streambridge

NOT_LOADED = (
    "streambridge.forwarder",
    "streambridge.importer.kcl",
    "streambridge.importer.checkpoints",
    "botocore",
    "boto3",
    "posthog",
    "requests",
    "sqlite3",
    "importlib.metadata",
    "email.utils",
    "streambridge.deadletter_remote",  # only when STREAMBRIDGE_DEAD_LETTER names one
    "pathlib",  # only for a dead-letter file
    "random",  # only for a retry's jitter
)


def loaded_after(statement: str) -> set[str]:
    """The modules a fresh interpreter has loaded after ``statement``."""
    code = f"import sys, json\n{statement}\nprint(json.dumps(sorted(sys.modules)))"
    command = [sys.executable, "-c", code]
    # without the coverage the test run starts in subprocesses (it loads modules of its own)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COVERAGE_", "COV_CORE_"))}
    out = subprocess.run(command, capture_output=True, text=True, check=True, env=env)  # noqa: S603
    return set(json.loads(out.stdout))


def test_the_handler_module_loads_only_what_it_uses() -> None:
    """None of the heavy or unrelated modules is loaded by importing the handler."""
    loaded = loaded_after("import streambridge.importer.aws_lambda")
    assert [name for name in NOT_LOADED if name in loaded] == []


def test_the_face_still_gives_every_name_and_the_version() -> None:
    """Every name of __all__ resolves on first use; __version__ too; dir() lists them."""
    for name in streambridge.__all__:
        assert getattr(streambridge, name) is not None, name
    assert isinstance(streambridge.__version__, str)
    assert set(streambridge.__all__) <= set(dir(streambridge))
