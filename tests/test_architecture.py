"""The package's layout rules (docs/architecture.md), checked on the source itself.

Two halves around a small shared base: no import cycles; neither half imports the other; the
base imports neither half; the pure modules import no boto3/botocore and do no I/O; no module
grows far past 400 lines. Imports are read from the source (``ast``), at every level of a
module (functions included); those under ``if TYPE_CHECKING:`` are type-only.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "streambridge"

BASE = {
    "streambridge._answers",
    "streambridge._emf",
    "streambridge._environment",
    "streambridge._aws",
    "streambridge._files",
    "streambridge._lambda_records",
    "streambridge._logging",
    "streambridge._prometheus",
    "streambridge._roles",
    "streambridge._wire",
    "streambridge._json",
    "streambridge._settings",
    "streambridge._tally",
    "streambridge._util",
    "streambridge.deadletter",
    "streambridge.deadletter_remote",
    "streambridge.errors",
    "streambridge.metrics",
    "streambridge.retry",
}
#: What the face and the adapters on top may import: everything.
TOP = (
    "streambridge",
    "streambridge.__main__",
    "streambridge._demo",
    "streambridge.cli",
    "streambridge.iam",
    "streambridge.pytest_plugin",
    "streambridge.testing",
)
PURE = {
    *(f"streambridge.forwarder.{name}" for name in ("settings", "filtering", "exclusion")),
    *(f"streambridge.forwarder.{name}" for name in ("framing", "encoding", "answers")),
    *(f"streambridge.forwarder.{name}" for name in ("delivery", "results")),
    *(f"streambridge.importer.{name}" for name in ("settings", "keys", "decoding", "events")),
    *(f"streambridge.importer.{name}" for name in ("conversion", "shards", "answers", "results")),
    "streambridge.importer.kpl",
    "streambridge._lambda_records",
    "streambridge._answers",
    "streambridge._json",
    "streambridge._settings",
    "streambridge._tally",
    "streambridge._util",
    "streambridge.errors",
    "streambridge.metrics",
    "streambridge.retry",
}
#: No edge runs back up the house, not even for type checkers (DeliveryError is generic).
TYPE_ONLY_ALLOWED: set[tuple[str, str]] = set()
IO_MODULES = {"os", "io", "socket", "sqlite3", "subprocess", "urllib", "http", "pathlib"}
MAX_LINES = 400


def module_name(path: Path) -> str:
    """``src/streambridge/forwarder/encoding.py`` -> ``streambridge.forwarder.encoding``."""
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(name: str) -> tuple[set[str], set[str]]:
    """The modules ``name`` imports: at run time, and for type checkers only."""
    tree = ast.parse(MODULES[name].read_text(encoding="utf-8"))
    type_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            type_only.update(id(child) for stmt in node.body for child in ast.walk(stmt))
    runtime: set[str] = set()
    typing: set[str] = set()
    for node in ast.walk(tree):
        found: list[str] = []
        if isinstance(node, ast.Import):
            found = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found = [node.module]
            # `from streambridge.forwarder import forwarder` imports a submodule
            found += [f"{node.module}.{a.name}" for a in node.names]
        (typing if id(node) in type_only else runtime).update(
            f for f in found if f in MODULES or not f.startswith("streambridge")
        )
    return runtime, typing


def half(name: str) -> str:
    """``"forwarder"``, ``"importer"``, ``"base"`` or ``"top"``."""
    if name in BASE:
        return "base"
    for part in ("forwarder", "importer"):
        if name == f"streambridge.{part}" or name.startswith(f"streambridge.{part}."):
            return part
    assert name in TOP or name.startswith(TOP[1:]), f"{name} belongs to no part of the layout"
    return "top"


def test_every_module_belongs_to_one_part() -> None:
    """Each module is in the base, in one half, or on top (the face and the adapters)."""
    parts = {name: half(name) for name in MODULES}
    assert {"base", "forwarder", "importer", "top"} == set(parts.values())


@pytest.mark.parametrize("name", sorted(MODULES))
def test_the_parts_import_in_one_direction(name: str) -> None:
    """The base imports neither half; neither half imports the other; only the top sees both."""
    runtime, typing = imports(name)
    mine = half(name)
    for other in sorted(m for m in runtime | typing if m.startswith("streambridge")):
        theirs = half(other)
        if (name, other) in TYPE_ONLY_ALLOWED and other in typing - runtime:
            continue
        if mine == "base":
            assert theirs == "base", f"the base module {name} imports {other}"
        elif mine in ("forwarder", "importer"):
            assert theirs in ("base", mine), f"{name} ({mine}) imports {other} ({theirs})"


def test_no_import_cycles() -> None:
    """The graph of run-time imports between streambridge's modules has no cycle."""
    graph = {name: {m for m in imports(name)[0] if m in MODULES and m != name} for name in MODULES}
    # A package's __init__ re-exports its submodules; a submodule importing its own package
    # would close a loop through it, so such an edge counts.
    state: dict[str, str] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                pytest.fail(" -> ".join([*path[path.index(nxt) :], nxt]))
            if nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])


@pytest.mark.parametrize("name", sorted(PURE))
def test_pure_modules_import_no_aws_and_do_no_io(name: str) -> None:
    """The pure modules import no boto3/botocore, no I/O module, and open nothing."""
    runtime, typing = imports(name)
    everything = runtime | typing
    assert not {m for m in everything if m.split(".")[0] in {"boto3", "botocore"}}
    assert not {m for m in runtime if m.split(".")[0] in IO_MODULES}
    source = MODULES[name].read_text(encoding="utf-8")
    assert "open(" not in source.replace("reopen(", "")
    assert not {
        m
        for m in runtime
        if m.startswith("streambridge")
        and m
        not in PURE
        | {
            "streambridge.forwarder",
            "streambridge.importer",
        }
    }, f"{name} imports a module that is not pure"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_module_is_too_long(name: str) -> None:
    """No module grows far past 400 lines (docs/architecture.md)."""
    lines = len(MODULES[name].read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{name} has {lines} lines"
