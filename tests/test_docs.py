"""Every Python code block in README.md and docs/*.md runs (against the local AWS where needed)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from streambridge.testing import LocalAWS
from tests.conftest import SAMPLE_NAMES, load_sample

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def blocks(path: Path) -> list[str]:
    """The Python code blocks of a Markdown file, in order."""
    return BLOCK.findall(path.read_text(encoding="utf-8"))


def test_docs_have_examples() -> None:
    """The README and the forwarder and testing pages carry runnable examples."""
    with_code = {p.name for p in DOCS if blocks(p)}
    assert {
        "README.md",
        "forwarder.md",
        "testing.md",
        "importer.md",
        "migrating-from-posthog.md",
    } <= with_code


@pytest.mark.parametrize("path", [p for p in DOCS if blocks(p)], ids=lambda p: p.name)
def test_python_blocks_run(
    path: Path, aws: LocalAWS, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A page's blocks run in order in one namespace; AWS calls go to the local AWS."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", aws.endpoint_url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", aws.region)
    aws.create_delivery_stream("mparticle-events")
    aws.create_stream("app-clicks")
    aws.put_records(
        "app-clicks",
        [b'{"properties": {"eventName": "Signed Up", "userId": "u-1", "foo": 1}}'],
        key="u",
    )
    monkeypatch.chdir(tmp_path)  # the README writes kinesis-state.db
    namespace: dict[str, Any] = {
        "batches": [load_sample(n) for n in SAMPLE_NAMES],
        "__name__": "docs",
    }
    for code in blocks(path):
        exec(compile(code, str(path), "exec"), namespace)  # noqa: S102 - our own documentation
    if path.name == "README.md":
        assert namespace["result"].sent > 0
        assert aws.delivered("mparticle-events")
        assert "caught_up" == namespace["totals"].stopped_because
        assert 1 == namespace["totals"].events


def test_ci_runs_the_readme_commands_verbatim() -> None:
    """The README's two commands (demo, tests) are run as they are, in a fresh venv, by .ci/run."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    commands = re.findall(r"^```sh\n(python3 -m venv .*?)\n```", readme, re.MULTILINE)
    assert 2 == len(commands)
    assert "streambridge demo" in commands[0]
    assert commands[1].endswith("python -m pytest")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    for command in commands:
        assert command in ci
