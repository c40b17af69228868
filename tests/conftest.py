"""Shared fixtures: the sample batches, and one moto server per test session."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from streambridge.pytest_plugin import streambridge_aws, streambridge_aws_server  # noqa: F401
from streambridge.testing import LocalAWS
from tests.kclpy import kclpy_path

settings.register_profile("default", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("fast", max_examples=20, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

SAMPLES_DIR = Path(__file__).resolve().parents[1] / "src" / "streambridge" / "samples"
SAMPLE_NAMES = sorted(p.name for p in SAMPLES_DIR.glob("*.json"))


def load_sample(name: str) -> dict[str, Any]:
    """A fresh copy of one sample batch."""
    return json.loads((SAMPLES_DIR / name).read_text(encoding="utf-8"))  # type: ignore[no-any-return]


@pytest.fixture(name="ios")
def _ios() -> dict[str, Any]:
    return load_sample("ios_lifecycle_screens_custom_commerce.json")


@pytest.fixture(name="android")
def _android() -> dict[str, Any]:
    return load_sample("android_crash_network_push_location.json")


@pytest.fixture(name="web")
def _web() -> dict[str, Any]:
    return load_sample("web_identity_attribute_profile_changes.json")


@pytest.fixture(name="s2s")
def _s2s() -> dict[str, Any]:
    return load_sample("s2s_eventless_attribute_sync.json")


@pytest.fixture(name="odd")
def _odd() -> dict[str, Any]:
    return load_sample("odd_and_bad_data.json")


@pytest.fixture(name="samples")
def _samples() -> list[dict[str, Any]]:
    return [load_sample(name) for name in SAMPLE_NAMES]


def frozen_copy(value: Any) -> Any:
    """A deep copy to compare an input against after a call (to prove it was not mutated)."""
    return copy.deepcopy(value)


@pytest.fixture(name="aws")
def _aws(streambridge_aws: LocalAWS) -> LocalAWS:  # noqa: F811 - pytest wires fixtures by name
    """The session's local AWS, emptied before the test (the shipped pytest plugin's fixture)."""
    return streambridge_aws


# --------------------------------------------------------------------------- kinesalite

KINESALITE = Path(
    os.environ.get(
        "STREAMBRIDGE_KINESALITE",
        Path(__file__).resolve().parents[1] / ".emulators" / "node_modules" / "kinesalite",
    )
)
_KINESALITE_SCRIPT = """
const kinesalite = require(process.argv[1]);
const server = kinesalite({createStreamMs: 0, deleteStreamMs: 0, updateStreamMs: 0, shardLimit: 100});
server.listen(0, '127.0.0.1', () => console.log(server.address().port));
"""


@pytest.fixture(scope="session", name="kinesalite")
def _kinesalite() -> Iterator[str]:
    """Kinesalite on 127.0.0.1 (a free port); its endpoint URL. Skipped without Node/kinesalite."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("emulator tests need Node.js (node is not on PATH)")
    if not KINESALITE.is_dir():
        pytest.skip(
            f"emulator tests need kinesalite: npm install --prefix .emulators kinesalite@3.3.3 "
            f"(looked in {KINESALITE})"
        )
    process = subprocess.Popen(  # noqa: S603 - our own script, loopback only
        [node, "-e", _KINESALITE_SCRIPT, str(KINESALITE)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline())
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()


@pytest.fixture(scope="session", name="kclpy")
def _kclpy() -> dict[str, str]:
    """amazon-kclpy importable here; the environment a subprocess needs to import it too.

    Fetched once from PyPI's sdist (tests/kclpy.py): its Python modules, not its jars.
    """
    try:
        path = kclpy_path()
    except OSError as exc:
        pytest.skip(f"amazon-kclpy's Python modules are not available: {exc}")
    env = dict(os.environ)
    if path is not None:
        if str(path) not in sys.path:
            sys.path.insert(0, str(path))
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(path), env.get("PYTHONPATH")) if p)
    return env


@pytest.fixture(autouse=True)
def _no_leftover_cli_logging() -> Iterator[None]:
    """A test that runs the command in-process leaves no stderr handler for the next one."""
    import logging  # noqa: PLC0415

    from streambridge.cli._common import _StderrHandler  # noqa: PLC0415

    logger = logging.getLogger("streambridge")
    level = logger.level
    yield
    for handler in [h for h in logger.handlers if isinstance(h, _StderrHandler)]:
        logger.removeHandler(handler)
    logger.setLevel(level)


def load_checkpoints(db: Path, stream: str) -> dict[str, Any]:
    """The checkpoints a SQLite file holds for ``stream`` (the file is closed again)."""
    from streambridge.importer.checkpoints import SQLiteCheckpointStore  # noqa: PLC0415

    with SQLiteCheckpointStore(db) as store:
        return store.load(stream)


@pytest.fixture(name="open_store")
def _open_store() -> Iterator[Any]:
    """Open SQLite checkpoint stores that are closed when the test ends (3.13 warns)."""
    from streambridge.importer.checkpoints import SQLiteCheckpointStore  # noqa: PLC0415

    opened: list[SQLiteCheckpointStore] = []

    def open_store(path: Path) -> SQLiteCheckpointStore:
        store = SQLiteCheckpointStore(path)
        opened.append(store)
        return store

    yield open_store
    for store in opened:
        store.close()
