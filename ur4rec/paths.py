"""Where every artifact lives. One place, so stages, CLI, reports and tests agree on the layout under `data/`.

data/raw/<dataset>/             raw files as published (fetched or copied in)
data/<dataset>/prepared/        leak-free reranking samples (prepare)
data/<dataset>/llm/             LLM user preferences and item knowledge (generate)
data/<dataset>/emb/             frozen-encoder vectors in safetensors shards (encode)
data/<dataset>/runs/<backbone>/<arm>/seed<k>/   one run: train/, pretrain/, eval/, dvclive/
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
    name: str
    root: Path = DATA_ROOT

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
        return self.base / "llm"

    @property
    def emb(self) -> Path:
        return self.base / "emb"

    def run(self, backbone: str, arm: str, seed: int) -> "RunPaths":
        return RunPaths(self, backbone, arm, seed)


@dataclass(frozen=True)
class RunPaths:
    """Every folder of one run (dataset, backbone, arm, seed); the only place run directories are built."""

    dataset: DatasetPaths
    backbone: str
    arm: str
    seed: int

    @property
    def root(self) -> Path:
        return self.dataset.base / "runs" / self.backbone / self.arm / f"seed{self.seed}"

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
        return self.root / ".train.resume"

    @property
    def pretrain(self) -> Path:
        """The pre-trained retriever (pretrain), or the marker of a variant without pre-training."""
        return self.root / "pretrain"

    @property
    def pretrain_resume(self) -> Path:
        return self.root / ".pretrain.resume"

    @property
    def eval(self) -> Path:
        """Test metrics: metrics.json and per_sample.parquet (evaluate)."""
        return self.root / "eval"

    def sibling(self, arm: str) -> "RunPaths":
        """The run of another arm with the same dataset, backbone and seed (e.g. the Base a variant starts from)."""
        return RunPaths(self.dataset, self.backbone, arm, self.seed)


def cache_dir(kind: str, root: Path = DATA_ROOT) -> Path:
    return root / "cache" / kind


def report_dir(root: Path = DATA_ROOT) -> Path:
    return root / "report"
