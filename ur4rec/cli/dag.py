"""`dvc.yaml` generated from one description of the stages, with each stage's code deps computed from the
import closure of its script, so a stale result can never pass for up to date.

The code deps are files, not packages: the training stages depend on `ur4rec/llm/config.py` (the settings
check reads it) but not on `ur4rec/llm/generate.py`, so editing the generation code reruns no training.

They reach DVC through one fingerprint per script, `data/code/<script>.json` (the sha256 of every file in its
closure), written by the `code` stage, which depends on all of `stages/` and `ur4rec/`. Editing any file reruns
`code` (about a second) and then only the stages whose fingerprint changed. Listing the files themselves as
deps gave every stage about 70 entries in `dvc.lock`, which DVC re-reads and rewrites after each stage: at
three seeds that lock file alone cost more than ten seconds per stage.

`ur4rec dag` fails when `dvc.yaml` differs from what this module writes; `ur4rec dag --write`
rewrites it. The test suite runs the check.
"""

from __future__ import annotations

import ast
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "ur4rec"

SEED_RUNS = "data/${item.dataset}/runs/${item.backbone}/seed${item.seed}"  # ur4rec.paths.SeedPaths
BASE_RUN = SEED_RUNS + "/base"
PREPARED = "data/${item.dataset}/prepared"
EMB = "data/${item.dataset}/emb"
CODE_DIR = "data/code"
CODE_STAGE = "code"
CODE_SOURCES = ["stages", PACKAGE]  # what the fingerprints are computed from (bytecode is in .dvcignore)


@dataclass
class Stage:
    script: str
    args: str
    comment: str
    deps: list[str] = field(default_factory=list)
    params: list[str] = field(default_factory=list)
    outs: list[object] = field(default_factory=list)
    metrics: list[str] = field(default_factory=list)
    plots: list[object] = field(default_factory=list)
    foreach: str | None = None                 # foreach over a params list (one dimension)
    matrix: dict[str, str] | None = None       # matrix over params lists


DATASET = "${item}"
STAGES: dict[str, Stage] = {
    "fetch": Stage(
        "stages/fetch.py", DATASET, "raw files into data/raw/<dataset> (mirror copy or verified download)",
        params=["fetch.mirrors", "fetch.allow_unpinned", "dataset.${item}.format", "dataset.${item}.raw_name",
                "dataset.${item}.category"],
        outs=[{"data/raw/${item}": {"push": False}}],  # raw data licences forbid redistribution
        foreach="datasets"),
    "prepare": Stage(
        "stages/prepare.py", DATASET, "leak-free reranking lists and the LLM histories",
        deps=["data/raw/${item}"],
        params=["prepare", *(f"dataset.${{item}}.{k}" for k in ("format", "category", "min_rating", "k_core", "prepare"))],
        outs=["data/${item}/prepared"],
        foreach="datasets"),
    "generate": Stage(
        "stages/generate.py", DATASET, "LLM preferences and item knowledge, through the content-addressed cache",
        deps=["templates", "data/${item}/prepared"], params=["llm", "dataset.${item}.domain"],
        outs=["data/${item}/llm"], foreach="datasets"),
    "encode": Stage(
        "stages/encode.py", DATASET, "frozen-encoder vectors of the LLM and raw texts",
        deps=["data/${item}/llm", "data/${item}/prepared"], params=["encoder"], outs=["data/${item}/emb"],
        metrics=["data/${item}/encode_report.json"],
        foreach="datasets"),
    "train": Stage(
        "stages/train.py", "${item.dataset} ${item.backbone} ${item.seed}", "the Base run of a backbone",
        deps=[PREPARED], params=["train", "backbone.${item.backbone}"],
        outs=[BASE_RUN + "/train"], metrics=[BASE_RUN + "/dvclive/metrics.json"],
        plots=[{BASE_RUN + "/dvclive/plots/metrics": {"x": "step"}}],
        matrix={"dataset": "datasets", "backbone": "backbones", "seed": "seeds"}),
    # One pretrain, one train_aug and one evaluate stage per backbone and seed, not one per variant: DVC
    # re-reads and rewrites the whole dvc.lock after each stage (about 3 s per 100 KB), so the stage count
    # times the lock size was the largest cost of a 3-seed study that is not training. The pretrain and
    # train_aug outputs persist: a variant whose inputs are unchanged keeps its folder
    # (ur4rec.runs.training.for_each_variant), so changing one variant retrains that variant alone.
    "pretrain": Stage(
        "stages/pretrain.py", "${item.dataset} ${item.backbone} ${item.seed}",
        "each variant's retriever pre-training against its seed's Base (a marker for variants without)",
        deps=[PREPARED, EMB, BASE_RUN + "/train"],
        params=["retriever.arch", "retriever.pretrain", "retriever.per_backbone", "retriever.joint.threads",
                "retriever.joint.standardise",
                "variants", "variant", "backbone.${item.backbone}", "train.deterministic", "train.progress",
                "train.distributed"],
        outs=[{SEED_RUNS + "/pretrain": {"persist": True}}],
        matrix={"dataset": "datasets", "backbone": "backbones", "seed": "seeds"}),
    "train_aug": Stage(
        "stages/train_aug.py", "${item.dataset} ${item.backbone} ${item.seed}",
        "joint training of every arm (the control and each augmented variant) from its seed's Base",
        deps=[PREPARED, EMB, BASE_RUN + "/train", SEED_RUNS + "/pretrain"],
        params=["train", "backbone.${item.backbone}", "retriever.arch", "retriever.joint", "retriever.per_backbone",
                "variants", "variant"],
        outs=[{SEED_RUNS + "/arms": {"persist": True}}],
        matrix={"dataset": "datasets", "backbone": "backbones", "seed": "seeds"}),
    "evaluate": Stage(
        "stages/evaluate.py", "${item.dataset} ${item.backbone} ${item.seed}",
        "test metrics of the Base run and every arm",
        deps=[PREPARED, EMB, BASE_RUN + "/train", SEED_RUNS + "/arms"],
        params=["evaluate", "train.deterministic", "retriever.joint.threads", "backbone.${item.backbone}",
                "retriever.arch", "retriever.per_backbone", "variants", "variant"],
        outs=[SEED_RUNS + "/eval"], metrics=[SEED_RUNS + "/metrics.json"],
        matrix={"dataset": "datasets", "backbone": "backbones", "seed": "seeds"}),
    "report": Stage(
        "stages/report.py", DATASET, "tables, user-level statistics and plots over every evaluated run",
        deps=["data/${item}/runs", "data/${item}/llm"],
        params=["backbones", "variants", "seeds", "report", "evaluate.ks", "prepare.n_candidates", "variant",
                "retriever.per_backbone", "retriever.pretrain.n_negatives", "dataset.${item}"],
        outs=["data/report/${item}/results.md", "data/report/${item}/bars.png"],
        metrics=["data/report/${item}/results.json"], foreach="datasets"),
}


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


def fingerprint_file(script: str) -> str:
    """The fingerprint a stage running `script` depends on (one per script)."""
    return f"{CODE_DIR}/{Path(script).stem}.json"


def fingerprint(script: Path, root: Path = ROOT) -> dict[str, str]:
    """sha256 of every file in a script's import closure, by repository path."""
    return {path: hashlib.sha256((root / path).read_bytes()).hexdigest() for path in closure(script, root)}


def scripts() -> list[str]:
    return sorted({stage.script for stage in STAGES.values()})


def write_fingerprints(root: Path = ROOT) -> list[Path]:
    """The `code` stage: one fingerprint per stage script, written atomically."""
    from ur4rec.io import write_text

    written = []
    for script in scripts():
        path = root / fingerprint_file(script)
        write_text(path, json.dumps({"script": script, "files": fingerprint(root / script, root)}, indent=1) + "\n")
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
    body: dict = {"cmd": f"python {stage.script} {stage.args}",
                  "deps": [fingerprint_file(stage.script)] + stage.deps}
    for key in ("params", "outs", "metrics", "plots"):
        if getattr(stage, key):
            body[key] = getattr(stage, key)
    if stage.foreach:
        return {"foreach": "${" + stage.foreach + "}", "do": body}
    return {"matrix": {k: "${" + v + "}" for k, v in (stage.matrix or {}).items()}, **body}


def _block(name: str, comment: str, body: dict) -> str:
    text = yaml.safe_dump({name: body}, sort_keys=False, width=120)
    return f"  # {name}: {comment}\n" + "".join(f"  {line}\n" for line in text.splitlines())


def render() -> str:
    code = {"cmd": "python stages/code.py", "deps": CODE_SOURCES,
            "outs": [fingerprint_file(script) for script in scripts()]}
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
