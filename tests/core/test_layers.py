"""The architecture is enforced: layer contracts (import-linter), thin stages, and DVC deps that cannot drift."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO_ROOT
from ur4rec.cli import dag


@pytest.mark.slow
def test_layer_contracts_hold():
    """A cycle or an upward import (e.g. train -> runs, data -> llm) fails here."""
    lint = Path(sys.executable).parent / "lint-imports"
    proc = subprocess.run([str(lint), "--config", str(REPO_ROOT / "pyproject.toml")], cwd=REPO_ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 broken" in proc.stdout


def test_stage_scripts_call_only_the_orchestration_layer():
    for script in sorted((REPO_ROOT / "stages").glob("*.py")):
        modules = dag.imported_modules(script, REPO_ROOT)
        ours = {m for m in modules if m.startswith("ur4rec")}
        allowed = {m for m in ours if m.startswith(("ur4rec.runs", "ur4rec.cli.boundary", "ur4rec.cli.launch"))
                   or m == "ur4rec" or (script.name == "code.py" and m.startswith("ur4rec.cli.dag"))}
        assert ours == allowed, f"{script.name} imports {sorted(ours - allowed)} below the runs layer"


@pytest.mark.slow
def test_dvc_yaml_makes_every_stage_depend_on_the_code_it_imports():
    """Each stage depends on its script's fingerprint, which the `code` stage writes from the whole tree and
    which hashes every file of the script's import closure; a stale dvc.yaml fails here."""
    assert dag.check() == [], "dvc.yaml is stale: run `ur4rec dag --write`"
    stages = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())["stages"]
    code = stages[dag.CODE_STAGE]
    assert code["deps"] == ["stages", "ur4rec"]
    for name, stage in dag.STAGES.items():
        body = stages[name].get("do", stages[name])
        assert dag.fingerprint_file(stage.script) in body["deps"] and dag.fingerprint_file(stage.script) in code["outs"]
        assert not [d for d in body["deps"] if d.endswith(".py")], name  # no file lists in dvc.lock
        hashed = dag.fingerprint(REPO_ROOT / stage.script)
        assert sorted(hashed) == dag.closure(REPO_ROOT / stage.script)
        assert stage.script in hashed and "ur4rec/config.py" in hashed


def _tiny_repo(root: Path, modules: dict[str, str]) -> tuple[Path, Path]:
    """A package `ur4rec` with these modules (plus an empty `unused.py`) and a script `s.py` importing `ur4rec.a`."""
    pkg = root / "ur4rec"
    pkg.mkdir()
    for name, text in {"__init__": "", **modules, "unused": ""}.items():
        (pkg / f"{name}.py").write_text(text)
    script = root / "s.py"
    script.write_text("import ur4rec.a\n")
    return pkg, script


def test_a_fingerprint_changes_with_its_closure_only(tmp_path):
    pkg, script = _tiny_repo(tmp_path, {"a": "X = 1\n"})
    before = dag.fingerprint(script, tmp_path)
    (pkg / "unused.py").write_text("Y = 2\n")
    assert dag.fingerprint(script, tmp_path) == before
    (pkg / "a.py").write_text("X = 2\n")
    assert dag.fingerprint(script, tmp_path)["ur4rec/a.py"] != before["ur4rec/a.py"]


def test_the_closure_sees_imports_inside_functions(tmp_path):
    _, script = _tiny_repo(tmp_path, {"a": "def f():\n    from ur4rec import b\n    return b\n",
                                      "b": "from . import c\n", "c": ""})
    assert dag.closure(script, tmp_path) == ["s.py", "ur4rec/__init__.py", "ur4rec/a.py", "ur4rec/b.py", "ur4rec/c.py"]


def test_training_stages_do_not_depend_on_generation_or_report_code():
    """What a stage does not run cannot make it rerun: editing the LLM or report code retrains nothing."""
    for stage in ("train", "train_aug", "pretrain", "evaluate"):
        deps = dag.closure(REPO_ROOT / dag.STAGES[stage].script)
        assert not [d for d in deps if d.startswith(("ur4rec/llm/generate", "ur4rec/report/build", "ur4rec/cli/app"))]
    generate = dag.closure(REPO_ROOT / dag.STAGES["generate"].script)
    heavy = ("ur4rec/train/loop", "ur4rec/retriever/model", "ur4rec/retriever/augment", "ur4rec/report/build",
             "ur4rec/encode/encode")
    assert not [d for d in generate if d.startswith(heavy)]


def test_data_and_text_stages_never_read_model_code():
    """fetch, prepare, generate and encode parse only their own params sections: no file under models/."""
    for stage in ("fetch", "prepare", "generate", "encode"):
        deps = dag.closure(REPO_ROOT / dag.STAGES[stage].script)
        assert not [d for d in deps if d.startswith("ur4rec/models/")], stage


def test_a_model_implementation_enters_only_its_own_backbone_fingerprint(tmp_path):
    """The stage scripts import no model implementation (models are imported by name when built); each
    backbone's fingerprint holds its own module, so editing sasrec.py reruns SASRec's stages alone."""
    from ur4rec.models.config import MODELS

    implementations = {str(dag.module_file(e.module).relative_to(REPO_ROOT)) for e in MODELS.values()}
    for name, stage in dag.STAGES.items():
        assert not implementations & set(dag.closure(REPO_ROOT / stage.script)), name
    params = {"backbone": {"sasrec": {}, "dlcm-hist": {"model": "dlcm"}}}
    for sub in ("stages", "ur4rec"):
        shutil.copytree(REPO_ROOT / sub, tmp_path / sub, ignore=shutil.ignore_patterns("__pycache__"))
    dag.write_fingerprints(tmp_path, params)
    written = {p.stem: json.loads(p.read_text()) for p in (tmp_path / "data/code/backbones").glob("*.json")}
    assert set(written) == {"sasrec", "dlcm-hist"} and written["dlcm-hist"]["model"] == "dlcm"
    assert "ur4rec/models/sasrec.py" in written["sasrec"]["files"]
    assert "ur4rec/models/dlcm.py" not in written["sasrec"]["files"]
    assert {"ur4rec/models/dlcm.py", "ur4rec/models/base.py"} <= set(written["dlcm-hist"]["files"])


def test_no_module_imports_one_that_imports_it():
    """No import cycle among ur4rec's modules, imports inside functions included (import-linter's layers
    allow cycles inside one layer, such as between two models or two CLI modules)."""
    package = REPO_ROOT / "ur4rec"

    def name(path: Path) -> str:
        parts = path.relative_to(REPO_ROOT).with_suffix("").parts
        return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)

    graph: dict[str, set[str]] = {}
    for path in package.rglob("*.py"):
        found = (dag.module_file(m) for m in dag.imported_modules(path))
        graph[name(path)] = {name(f) for f in found if f is not None} - {name(path)}
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            assert state.get(nxt) != 1, "import cycle: " + " -> ".join(trail[trail.index(nxt):] + [node, nxt]
                                                                         if nxt in trail else [node, nxt])
            if nxt not in state:
                visit(nxt, trail + [node])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
