"""Where every artifact lives. One place, so stages, CLI and tests agree on the layout under `data/`.

data/raw/<dataset>/             raw files as published (fetched or copied in)
data/<dataset>/prepared/        leak-free reranking samples (prepare)
data/<dataset>/llm/             LLM user preferences and item knowledge (generate)
data/<dataset>/emb/             frozen-encoder vectors in safetensors shards (encode)
data/<dataset>/runs/<backbone>/<variant>/   checkpoints, per-sample metrics (train, pretrain, evaluate)
data/cache/llm/                 content-addressed LLM output cache, shared by all datasets
data/cache/emb/                 content-addressed encoder cache
data/report/                    tables and plots over all runs
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DATA_ROOT = Path(os.environ.get("UR4REC_DATA", "data"))


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

    def run(self, backbone: str, variant: str = "base") -> Path:
        return self.base / "runs" / backbone / variant


def cache_dir(kind: str, root: Path = DATA_ROOT) -> Path:
    return root / "cache" / kind


def report_dir(root: Path = DATA_ROOT) -> Path:
    return root / "report"
