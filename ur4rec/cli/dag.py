"""`dvc.yaml` generated from the stage table (`ur4rec.runs.stages`), with each stage's code deps computed from
the import closure of its script, so a stale result can never pass for up to date.

The code deps are files, not packages: the training stages depend on `ur4rec/llm/config.py` (the settings
check reads it) but not on `ur4rec/llm/generate.py`, so editing the generation code reruns no training.

They reach DVC through one fingerprint per script, `data/code/<script>.json` (the sha256 of every file in its
closure), and one per `backbone:` entry, `data/code/backbones/<name>.json` (the closure of its model's module,
which no stage script imports: models are imported by name when built), written by the `code` stage, which
depends on all of `stages/` and `ur4rec/`. Editing any file reruns `code` (about a second) and then only the
stages whose fingerprints changed. Listing the files themselves as
deps gave every stage about 70 entries in `dvc.lock`, which DVC re-reads and rewrites after each stage: at
three seeds that lock file alone cost more than ten seconds per stage.

`ur4rec dag` fails when `dvc.yaml` differs from what this module writes; `ur4rec dag --write`
rewrites it. The test suite runs the check.
"""

from __future__ import annotations

import ast
import hashlib
import json
from pathlib import Path
from typing import Any, Mapping

import yaml

from ur4rec.runs.stages import BACKBONE_CODE_DIR, STAGES, Stage, backbone_fingerprint, fingerprint_file, model_modules

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "ur4rec"

CODE_STAGE = "code"
CODE_SOURCES = ["stages", PACKAGE]  # what the fingerprints are computed from (bytecode is in .dvcignore)


# ---------------------------------------------------------------- import closure


def module_file(module: str, root: Path = ROOT) -> Path | None:
    """The file of an `ur4rec` module (a package's `__init__.py`), or None if it is not ours."""
    if module != PACKAGE and not module.startswith(PACKAGE + "."):
        return None
    base = root / Path(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


def imported_modules(path: Path, root: Path = ROOT) -> set[str]:
    """Every module a file imports, at any depth of its code (imports inside functions count)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = ".".join(path.relative_to(root).with_suffix("").parts)
    if path.name == "__init__.py":
        package = package.removesuffix(".__init__")
    else:
        package = package.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)  # `from pkg import module`
    return found


def closure(script: Path, root: Path = ROOT) -> list[str]:
    """The repository files a script runs: itself, every ur4rec module it reaches, and their packages."""
    seen: set[Path] = set()
    todo = [script]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for module in imported_modules(path, root):
            parts = module.split(".")
            for depth in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__ and a/b/__init__ too
                found = module_file(".".join(parts[:depth]), root)
                if found is not None and found not in seen:
                    todo.append(found)
    return sorted(str(p.relative_to(root)) for p in seen)


# ---------------------------------------------------------------- code fingerprints


def fingerprint(script: Path, root: Path = ROOT) -> dict[str, str]:
    """sha256 of every file in a script's import closure, by repository path."""
    return {path: hashlib.sha256((root / path).read_bytes()).hexdigest() for path in closure(script, root)}


def scripts() -> list[str]:
    return sorted({stage.script for stage in STAGES.values()})


def backbone_models(params: Mapping[str, Any]) -> dict[str, str]:
    """Each `backbone:` entry of the params and the registered model it builds (unknown models are left to
    the settings check of the stages that build them)."""
    blocks = params.get("backbone") or {}
    return {name: (block or {}).get("model", name) for name, block in blocks.items()}


def write_fingerprints(root: Path = ROOT, params: Mapping[str, Any] | None = None) -> list[Path]:
    """The `code` stage: one fingerprint per stage script, and one per `backbone:` entry of `params` (default:
    `root/params.yaml`; the import closure of its model's module), written atomically."""
    from ur4rec.config import load_params
    from ur4rec.io import write_text

    params = load_params(root / "params.yaml") if params is None else params
    written = []
    for script in scripts():
        path = root / fingerprint_file(script)
        write_text(path, json.dumps({"script": script, "files": fingerprint(root / script, root)}, indent=1) + "\n")
        written.append(path)
    for stale in sorted((root / BACKBONE_CODE_DIR).glob("*.json")):
        stale.unlink()
    for name, model in backbone_models(params).items():
        files = {}
        for module in model_modules(model):
            files |= fingerprint(module_file(module, root), root)
        path = root / backbone_fingerprint(name)
        write_text(path, json.dumps({"backbone": name, "model": model, "files": files}, indent=1) + "\n")
        written.append(path)
    return written


# ---------------------------------------------------------------- dvc.yaml


HEADER = """\
# The UR4Rec pipeline, generated by `ur4rec dag --write` from ur4rec/cli/dag.py: edit that file, not this one.
# fetch@ds -> prepare@ds -> generate@ds -> encode@ds -> train@ds-backbone-seed (Base)
#   -> pretrain@ds-backbone-seed (every variant's retriever) -> train_aug@ds-backbone-seed (every variant's
#   joint training, the control's too) -> evaluate@ds-backbone-seed (Base and every arm) -> report@ds
# Code deps: data/code/<script>.json, the hashes of the script's import closure (files), written by `code`;
# params: the leaves the stage reads.
"""


def stage_entry(stage: Stage) -> dict:
    body: dict = {"cmd": f"python {stage.script} {stage.args}", "deps": stage.dvc_deps()}
    if stage.params:
        body["params"] = stage.dvc_params()
    for key in ("outs", "metrics", "plots"):
        if getattr(stage, key):
            body[key] = getattr(stage, key)
    if stage.foreach:
        return {"foreach": "${" + stage.foreach + "}", "do": body}
    return {"matrix": {k: "${" + v + "}" for k, v in (stage.matrix or {}).items()}, **body}


def _block(name: str, comment: str, body: dict) -> str:
    text = yaml.safe_dump({name: body}, sort_keys=False, width=120)
    return f"  # {name}: {comment}\n" + "".join(f"  {line}\n" for line in text.splitlines())


def render() -> str:
    code = {"cmd": "python stages/code.py", "deps": CODE_SOURCES, "params": ["backbone"],
            "outs": [fingerprint_file(script) for script in scripts()] + [BACKBONE_CODE_DIR]}
    parts = [HEADER, "stages:\n",
             _block(CODE_STAGE, "the fingerprint of each stage script's import closure (its code deps)", code)]
    parts += [_block(name, stage.comment, stage_entry(stage)) for name, stage in STAGES.items()]
    return "".join(parts)


def check(root: Path = ROOT) -> list[str]:
    """Differences between `dvc.yaml` and the generated file (empty when up to date)."""
    path = root / "dvc.yaml"
    current = path.read_text(encoding="utf-8") if path.exists() else ""
    wanted = render()
    if current == wanted:
        return []
    import difflib

    return list(difflib.unified_diff(current.splitlines(), wanted.splitlines(), "dvc.yaml", "generated", lineterm=""))
