"""The pipeline's stages in one table: what each stage script runs on, reads and writes.

Two things are built from it, so they cannot disagree: `dvc.yaml` (`ur4rec.cli.dag` renders each stage's deps,
params and outs) and the digest that decides whether a variant's persisted folder is kept (`stage_inputs`:
the same params and deps, narrowed to one variant).

Placeholders: `${item...}` are DVC's (dataset, backbone, seed of a matrix stage); `{variant}` marks what one
variant reads inside a stage that handles every variant (`variant.{variant}`, `.../pretrain/{variant}`). DVC
sees the whole (`variant`, `.../pretrain`); a variant's digest sees its own part. `variants` (which variants
the stage runs) is DVC's alone: adding a variant retrains no other.

Code deps are fingerprints (`data/code/<script>.json`: the sha256 of every file the script imports, written by
the `code` stage), plus, for a stage of one backbone, that backbone's own (`data/code/backbones/<name>.json`):
a model's implementation is imported by name when it is built, so it enters only its own stages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from ur4rec.config import get_path
from ur4rec.models.config import MODELS

SEED_RUNS = "data/${item.dataset}/runs/${item.backbone}/seed${item.seed}"  # ur4rec.paths.SeedPaths
BASE_RUN = SEED_RUNS + "/base"
PREPARED = "data/${item.dataset}/prepared"
EMB = "data/${item.dataset}/emb"
EMB_GENERATIONS = "data/${item.dataset}/emb_generations"  # a run reads one generation: `stage_inputs` names it
CODE_DIR = "data/code"
BACKBONE_CODE_DIR = CODE_DIR + "/backbones"
VARIANT = "{variant}"
FANOUT = "variants"                   # the list a per-variant stage iterates: not part of one variant's digest
UNRECORDED = ("train.progress",)      # leaves that change no number (progress bars): left out of digests


@dataclass(frozen=True)
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

    @property
    def per_backbone(self) -> bool:
        return bool(self.matrix and "backbone" in self.matrix)

    def code_deps(self) -> list[str]:
        own = [fingerprint_file(self.script)]
        return own + ([backbone_fingerprint("${item.backbone}")] if self.per_backbone else [])

    def dvc_deps(self) -> list[str]:
        return self.code_deps() + _unique(_whole(d) for d in self.deps)

    def dvc_params(self) -> list[str]:
        return _unique(_whole(p) for p in self.params)


def fingerprint_file(script: str) -> str:
    """The code fingerprint a stage running `script` depends on."""
    return f"{CODE_DIR}/{Path(script).stem}.json"


def backbone_fingerprint(backbone: str) -> str:
    """The code fingerprint of one `backbone:` entry's model implementation."""
    return f"{BACKBONE_CODE_DIR}/{backbone}.json"


def model_modules(model: str) -> list[str]:
    """The modules a registered model's stages import by name: its implementation and its own pre-training
    (none for an unknown name: the settings check says so)."""
    entry = MODELS.get(model)
    return [] if entry is None else [m for m in (entry.module, entry.pretraining) if m is not None]


def _whole(entry: str) -> str:
    """What DVC tracks for an entry: `variant.{variant}` -> `variant`, `.../pretrain/{variant}` -> `.../pretrain`."""
    return entry.replace("." + VARIANT, "").replace("/" + VARIANT, "")


def _unique(items) -> list[str]:
    return list(dict.fromkeys(items))


DATASET = "${item}"
SEED_MATRIX = {"dataset": "datasets", "backbone": "backbones", "seed": "seeds"}
LOOP_FLAGS = ["train.deterministic", "train.progress", "train.distributed"]
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
        outs=["data/${item}/llm", "data/${item}/llm_generations"], foreach="datasets"),
    "encode": Stage(
        "stages/encode.py", DATASET, "frozen-encoder vectors of the LLM and raw texts",
        deps=["data/${item}/llm", "data/${item}/llm_generations", "data/${item}/prepared"],
        params=["encoder", "llm.generations"], outs=["data/${item}/emb", "data/${item}/emb_generations"],
        metrics=["data/${item}/encode_report.json"],
        foreach="datasets"),
    "train": Stage(
        "stages/train.py", "${item.dataset} ${item.backbone} ${item.seed}", "the Base run of a backbone",
        deps=[PREPARED], params=["train", "backbone.${item.backbone}"],
        outs=[BASE_RUN + "/train"], metrics=[BASE_RUN + "/dvclive/metrics.json"],
        plots=[{BASE_RUN + "/dvclive/plots/metrics": {"x": "step"}}],
        matrix=SEED_MATRIX),
    # One pretrain, one train_aug and one evaluate stage per backbone and seed, not one per variant: DVC
    # re-reads and rewrites the whole dvc.lock after each stage (about 3 s per 100 KB), so the stage count
    # times the lock size was the largest cost of a 3-seed study that is not training. The pretrain and
    # train_aug outputs persist: a variant whose digest (`stage_inputs`) is unchanged keeps its folder
    # (ur4rec.runs.training.for_each_variant), so changing one variant retrains that variant alone.
    "pretrain": Stage(
        "stages/pretrain.py", "${item.dataset} ${item.backbone} ${item.seed}",
        "each variant's retriever pre-training against its seed's Base (a marker for variants without)",
        deps=[PREPARED, EMB, EMB_GENERATIONS, BASE_RUN + "/train"],
        params=["retriever.arch", "retriever.pretrain", "retriever.per_backbone", "retriever.joint.threads",
                "retriever.joint.standardise", FANOUT, "variant.{variant}", "backbone.${item.backbone}", *LOOP_FLAGS],
        outs=[{SEED_RUNS + "/pretrain": {"persist": True}}],
        matrix=SEED_MATRIX),
    "train_aug": Stage(
        "stages/train_aug.py", "${item.dataset} ${item.backbone} ${item.seed}",
        "joint training of every arm (the control and each augmented variant) from its seed's Base",
        deps=[PREPARED, EMB, EMB_GENERATIONS, BASE_RUN + "/train", SEED_RUNS + "/pretrain/{variant}"],
        params=["train", "backbone.${item.backbone}", "retriever.arch", "retriever.joint", "retriever.per_backbone",
                FANOUT, "variant.{variant}"],
        outs=[{SEED_RUNS + "/arms": {"persist": True}}],
        matrix=SEED_MATRIX),
    "evaluate": Stage(
        "stages/evaluate.py", "${item.dataset} ${item.backbone} ${item.seed}",
        "test metrics of the Base run and every arm",
        deps=[PREPARED, EMB, EMB_GENERATIONS, BASE_RUN + "/train", SEED_RUNS + "/arms"],
        params=["evaluate", "train.deterministic", "retriever.joint.threads", "backbone.${item.backbone}",
                "retriever.arch", "retriever.per_backbone", FANOUT, "variant"],
        outs=[SEED_RUNS + "/eval"], metrics=[SEED_RUNS + "/metrics.json"],
        matrix=SEED_MATRIX),
    "reference": Stage(
        "stages/reference.py", DATASET, "TopPop and item-CF on the same valid and test lists (the reference rows)",
        deps=["data/${item}/prepared"], params=["evaluate.ks", "prepare.history_len", "dataset.${item}.prepare"],
        outs=["data/${item}/reference"], metrics=["data/${item}/reference.json"], foreach="datasets"),
    "report": Stage(
        "stages/report.py", DATASET,
        "tables, user-level statistics and plots over every evaluated run; index.html with the per-user drill-down",
        deps=["data/${item}/runs", "data/${item}/llm", "data/${item}/llm_generations", "data/${item}/reference",
              "data/${item}/prepared", "data/${item}/emb", "data/${item}/emb_generations", "data/${item}/encode_report.json",
              "ur4rec/report/templates"],  # the page's template, script and style: not Python, so no fingerprint
        params=["backbones", "variants", "seeds", "llm.generations", "report", "evaluate.ks", "evaluate.drilldown_users",
                "prepare.n_candidates", "variant", "retriever.per_backbone", "retriever.pretrain.n_negatives",
                "dataset.${item}"],
        outs=["data/report/${item}/results.md", "data/report/${item}/bars.png", "data/report/${item}/index.html"],
        metrics=["data/report/${item}/results.json"], foreach="datasets"),
}


# ---------------------------------------------------------------- one variant's digest


def variant_reads(stage: str, dataset: str, backbone: str, seed: int, variant: str, root: Path,
                  upstream: bool = True) -> tuple[list[str], dict[str, Path]]:
    """The params leaves (dotted keys) and files one variant of a per-variant stage reads: the stage's own
    entries with the placeholders filled in, `variants` left out. `upstream`: whether the variant reads its
    own folder of an earlier per-variant stage (`.../pretrain/{variant}`; not a variant without pre-training,
    whose marker says nothing its params do not). `root` is the data folder (`data/`)."""
    entry = STAGES[stage]
    fill = {"${item.dataset}": dataset, "${item.backbone}": backbone, "${item.seed}": str(seed), VARIANT: variant}

    def filled(text: str) -> str:
        for key, value in fill.items():
            text = text.replace(key, value)
        return text

    keys = [filled(p) for p in entry.params if p != FANOUT]
    deps = entry.code_deps() + [d for d in entry.deps if upstream or VARIANT not in d]
    files = {filled(d): root / Path(filled(d)).relative_to("data") for d in deps}
    return keys, files


def recorded(params: Mapping[str, Any], keys: list[str]) -> dict[str, Any]:
    """The values of `keys` in the params as read (None where absent), less the leaves that change no number."""
    values = {key: get_path(params, key, None) for key in keys}
    for leaf in UNRECORDED:
        head, _, last = leaf.rpartition(".")
        if isinstance(values.get(head), dict):
            values[head] = {k: v for k, v in values[head].items() if k != last}
        values.pop(leaf, None)
    return values
