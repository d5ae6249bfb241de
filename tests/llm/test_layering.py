"""Package layering: `ur4rec.llm` stands beside data/encode/models/eval, and its modules form no cycle."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO_ROOT

LLM = REPO_ROOT / "ur4rec" / "llm"
# Shared foundations every sibling package may use.
ALLOWED = {"ur4rec.config", "ur4rec.io", "ur4rec.paths", "ur4rec.packaged", "ur4rec.errors", "ur4rec.precision"}


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


def test_only_the_cluster_module_imports_ray_and_it_never_imports_the_stage():
    """Ray is optional: the rest of the package imports without it; generate drives cluster, never the reverse."""
    for path in LLM.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        names |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        if any(m == "ray" or m.startswith("ray.") for m in names):
            assert path.name == "cluster.py", f"{path.relative_to(REPO_ROOT)} imports ray"
    assert not {m for m in imports(LLM / "cluster.py") if m.startswith("ur4rec.llm.generate")}
