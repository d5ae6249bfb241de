"""Package layering: `ur4rec.llm` stands beside data/encode/models/eval, and its modules form no cycle."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO_ROOT

LLM = REPO_ROOT / "ur4rec" / "llm"
# Shared foundations every sibling package may use.
ALLOWED = {"ur4rec.config", "ur4rec.io", "ur4rec.paths", "ur4rec.packaged", "ur4rec.errors"}


def imports(path: Path) -> set[str]:
    """Every ur4rec module a file imports, at any depth (function-level imports too)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            out |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
    return {m for m in out if m == "ur4rec" or m.startswith("ur4rec.")}


def test_llm_imports_only_itself_and_the_shared_foundations():
    for path in LLM.rglob("*.py"):
        outside = {m for m in imports(path) if not m.startswith("ur4rec.llm") and m not in ALLOWED
                   and not any(m.startswith(a + ".") for a in ALLOWED) and m != "ur4rec"}
        assert not outside, f"{path.relative_to(REPO_ROOT)} imports {sorted(outside)}"


def test_parallel_never_imports_the_stage_or_the_worker():
    """The worker runs the stage's pieces; the parent only starts it, so no import cycle is possible."""
    assert not {m for m in imports(LLM / "parallel.py") if m.startswith(("ur4rec.llm.generate", "ur4rec.llm.worker"))}
    assert not {m for m in imports(LLM / "worker.py") if m.startswith("ur4rec.llm.generate")}
