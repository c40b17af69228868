"""amazon-kclpy's Python modules for the KCL tests, without its jars.

amazon-kclpy's install downloads the KCL's jars from Maven Central (unreachable here, and
not needed: the tests play the daemon's side themselves). Its Python part is pure Python, so
the tests take it from the sdist on PyPI: ``pip download`` once, then only
``amazon_kclpy/**/*.py`` is unpacked into ``.emulators/`` (beside kinesalite). Where it is
importable already (``pip install 'streambridge[kcl]'``), that copy is used.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

VERSION = "3.1.3"  # the version the kcl extra pins (pyproject.toml says why)
CACHE = Path(__file__).resolve().parents[1] / ".emulators" / f"amazon_kclpy-{VERSION}"


def kclpy_path() -> Path | None:
    """A directory to put on ``sys.path`` for ``amazon_kclpy`` (None: importable already).

    Raises:
        OSError: The sdist could not be fetched or unpacked (no registry, say).
    """
    if importlib.util.find_spec("amazon_kclpy") is not None:
        return None
    if (CACHE / "amazon_kclpy" / "kcl.py").is_file():
        return CACHE
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:"]
        command += ["--quiet", "-d", tmp, f"amazon-kclpy=={VERSION}"]
        fetched = subprocess.run(  # noqa: S603 - pip, from this interpreter
            command,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        archives = list(Path(tmp).glob("amazon_kclpy-*.tar.gz"))
        if fetched.returncode or not archives:
            raise OSError(f"pip download amazon-kclpy failed: {fetched.stderr.strip()[-500:]}")
        partial = CACHE.with_name(CACHE.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)  # what an interrupted run left
        with tarfile.open(archives[0]) as sdist:
            for member in sdist.getmembers():
                parts = Path(member.name).parts
                wanted = len(parts) > 2 and parts[1] == "amazon_kclpy"  # <sdist>/amazon_kclpy/…
                if not wanted or not member.name.endswith(".py"):
                    continue
                if ".." in parts or not member.isfile():
                    continue
                target = partial.joinpath(*parts[1:])
                target.parent.mkdir(parents=True, exist_ok=True)
                source = sdist.extractfile(member)
                assert source is not None
                target.write_bytes(source.read())
        partial.rename(CACHE)
    return CACHE
