"""Where every artifact lives. One place, so stages, CLI, reports and tests agree on the layout under `data/`.

data/raw/<dataset>/             raw files as published (fetched or copied in)
data/<dataset>/prepared/        leak-free reranking samples (prepare)
data/<dataset>/llm/             LLM user preferences and item knowledge (generate), generation 0
data/<dataset>/emb/             frozen-encoder vectors in safetensors shards (encode), generation 0
data/<dataset>/llm_generations/<g>/, emb_generations/<g>/   the same of generation g >= 1 (`llm.generations`)
data/<dataset>/runs/<backbone>/seed<k>/         the runs of one backbone and seed (`SeedPaths`):
    base/train/, base/dvclive/                  the Base run (train)
    pretrain/<variant>/                         each variant's pre-trained retriever or marker (pretrain)
    arms/<variant>/train/, arms/<variant>/dvclive/  each variant's joint training (train_aug)
    eval/<arm>/, metrics.json                   test metrics of every arm (evaluate)
data/<dataset>/reference/<scorer>/, reference.json   TopPop and item-CF on the same lists (reference)
data/cache/llm/                 content-addressed LLM output cache, shared by all datasets
data/cache/emb/                 content-addressed encoder cache
data/report/<dataset>/          tables and plots over all runs

An arm is `base` (the backbone alone) or the name of a variant (`variant.<name>` in params).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DATA_ROOT = Path(os.environ.get("UR4REC_DATA", "data"))
BASE_ARM = "base"  # directory of a backbone's Base run; no variant may take this name


def model_cache_dir() -> Path:
    """Materialised model folders (e.g. the HF copy of a packaged GGUF), shared across checkouts."""
    base = os.environ.get("UR4REC_MODEL_CACHE") or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ur4rec" / "models"
    return Path(base)


@dataclass(frozen=True)
class DatasetPaths:
    """A dataset's folders; `generation` picks which LLM generation `llm`, `emb` and `encode_report` name (0: the
    first, at the historical places; g >= 1 under llm_generations/ and emb_generations/)."""

    name: str
    root: Path = DATA_ROOT
    generation: int = 0

    @property
    def raw(self) -> Path:
        return self.root / "raw" / self.name

    @property
    def base(self) -> Path:
        return self.root / self.name

    @property
    def prepared(self) -> Path:
        return self.base / "prepared"

    @property
    def llm(self) -> Path:
        return self.base / "llm" if self.generation == 0 else self.llm_generations / str(self.generation)

    @property
    def emb(self) -> Path:
        return self.base / "emb" if self.generation == 0 else self.emb_generations / str(self.generation) / "emb"

    @property
    def encode_report(self) -> Path:
        """The encode stage's counts and timings, beside `emb/` so that the store's bytes depend on its vectors alone."""
        if self.generation == 0:
            return self.base / "encode_report.json"
        return self.emb_generations / str(self.generation) / "encode_report.json"

    @property
    def llm_generations(self) -> Path:
        """The generate stage's generations after the first (one folder each, like llm/)."""
        return self.base / "llm_generations"

    @property
    def emb_generations(self) -> Path:
        """The encode stage's vectors of those generations (<g>/emb/, <g>/encode_report.json)."""
        return self.base / "emb_generations"

    def of_generation(self, generation: int) -> "DatasetPaths":
        return DatasetPaths(self.name, self.root, generation)

    @property
    def reference(self) -> Path:
        """reference/<scorer>/: per_sample.parquet and metrics.json of each reference scorer's test lists."""
        return self.base / "reference"

    @property
    def reference_metrics(self) -> Path:
        """Each reference scorer's valid and test means (the reference stage's DVC metrics file)."""
        return self.base / "reference.json"

    def run(self, backbone: str, arm: str, seed: int) -> "RunPaths":
        return RunPaths(self, backbone, arm, seed)

    def seed_runs(self, backbone: str, seed: int) -> "SeedPaths":
        return SeedPaths(self, backbone, seed)


@dataclass(frozen=True)
class SeedPaths:
    """The runs of one backbone and seed: one folder per DVC stage kind, so that the evaluation (one stage for
    all arms) can depend on every arm's training without containing its own outputs."""

    dataset: DatasetPaths
    backbone: str
    seed: int

    @property
    def root(self) -> Path:
        return self.dataset.base / "runs" / self.backbone / f"seed{self.seed}"

    @property
    def base(self) -> Path:
        """base/: the Base run (the train stage's output and its DVCLive logs)."""
        return self.root / BASE_ARM

    @property
    def arms(self) -> Path:
        """arms/<variant>/: each variant's joint training, the joint-training stage's one output."""
        return self.root / "arms"

    @property
    def pretrain(self) -> Path:
        """pretrain/<variant>/: the pre-training stage's one output, a folder per variant."""
        return self.root / "pretrain"

    @property
    def eval(self) -> Path:
        """eval/<arm>/: the evaluation stage's one output, a folder per arm."""
        return self.root / "eval"

    @property
    def metrics(self) -> Path:
        """Every arm's mean test metrics, by arm (the evaluation stage's DVC metrics file)."""
        return self.root / "metrics.json"

    @property
    def resume(self) -> Path:
        """Epoch-level resume state of unfinished trainings, outside every stage output."""
        return self.root / ".resume"


@dataclass(frozen=True)
class RunPaths:
    """Every folder of one run (dataset, backbone, arm, seed); the only place run directories are built."""

    dataset: DatasetPaths
    backbone: str
    arm: str
    seed: int

    @property
    def group(self) -> SeedPaths:
        return SeedPaths(self.dataset, self.backbone, self.seed)

    @property
    def root(self) -> Path:
        return self.group.base if self.arm == BASE_ARM else self.group.arms / self.arm

    @property
    def train(self) -> Path:
        """Best checkpoint, config.json, fit.json (train / train_aug)."""
        return self.root / "train"

    @property
    def live(self) -> Path:
        """DVCLive per-epoch metrics and plots of the training."""
        return self.root / "dvclive"

    @property
    def resume(self) -> Path:
        """Epoch-level resume state, only while a training is unfinished."""
        return self.group.resume / f"{self.arm}.train"

    @property
    def pretrain(self) -> Path:
        """The pre-trained retriever (pretrain), or the marker of a variant without pre-training."""
        return self.group.pretrain / self.arm

    @property
    def pretrain_resume(self) -> Path:
        return self.group.resume / f"{self.arm}.pretrain"

    @property
    def backbone_pretrain_resume(self) -> Path:
        """Resume state of the backbone's own pre-training (Recformer's), before the run's training."""
        return self.group.resume / f"{self.arm}.backbone-pretrain"

    @property
    def eval(self) -> Path:
        """Test metrics: metrics.json and per_sample.parquet (evaluate)."""
        return self.group.eval / self.arm

    def sibling(self, arm: str) -> "RunPaths":
        """The run of another arm with the same dataset, backbone and seed (e.g. the Base a variant starts from)."""
        return RunPaths(self.dataset, self.backbone, arm, self.seed)


def cache_dir(kind: str, root: Path = DATA_ROOT) -> Path:
    return root / "cache" / kind


def report_dir(root: Path = DATA_ROOT) -> Path:
    return root / "report"
