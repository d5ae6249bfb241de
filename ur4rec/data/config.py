"""Typed views of the `fetch`, `dataset.<name>` and `prepare` params sections."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

from ur4rec.config import ParamsError, get_path, section


@dataclass(frozen=True)
class FetchConfig:
    mirrors: list[str] = field(default_factory=list)  # searched as <mirror>/<raw_name>/ before downloading
    allow_unpinned: bool = False  # download sources without a pinned sha256 (UCSD files) anyway


@dataclass(frozen=True)
class DatasetConfig:
    format: str
    raw_name: str
    domain: str = "item"  # read by the LLM stage only
    category: Optional[str] = None  # amazon2018: which <Category>_5.json + meta_<Category>.json.gz
    min_rating: float = 0.0  # keep interactions rated >= this; unrated interactions are always kept
    k_core: int = 5


@dataclass(frozen=True)
class PrepareConfig:
    seed: int = 42
    split: list[float] = field(default_factory=lambda: [0.8, 0.1, 0.1])
    n_candidates: int = 100
    history_len: int = 150
    train_samples_per_user: int = 3
    llm_history_len: int = 20
    on_bad_line: str = "error"  # error | skip
    duplicates: str = "earliest"  # earliest | latest: which of a repeated (user, item) pair is kept

    def __post_init__(self) -> None:
        if len(self.split) != 3 or any(x < 0 for x in self.split) or sum(self.split) <= 0:
            raise ParamsError(f"prepare.split must be three non-negative fractions, got {self.split}")
        if self.n_candidates < 2:
            raise ParamsError(f"prepare.n_candidates must be >= 2, got {self.n_candidates}")
        for name in ("history_len", "train_samples_per_user", "llm_history_len"):
            if getattr(self, name) < 0:
                raise ParamsError(f"prepare.{name} must be >= 0, got {getattr(self, name)}")
        if self.on_bad_line not in ("error", "skip"):
            raise ParamsError(f"prepare.on_bad_line must be 'error' or 'skip', got {self.on_bad_line!r}")
        if self.duplicates not in ("earliest", "latest"):
            raise ParamsError(f"prepare.duplicates must be 'earliest' or 'latest', got {self.duplicates!r}")


def dataset_config(params: Mapping[str, Any], name: str) -> DatasetConfig:
    """`dataset.<name>` as a typed config; an unknown dataset is an error listing the known ones."""
    known = get_path(params, "dataset", {}) or {}
    if name not in known:
        raise ParamsError(f"unknown dataset {name!r}: params.yaml `dataset` defines {sorted(known)}")
    return section(DatasetConfig, known[name], f"dataset.{name}")


def prepare_config(params: Mapping[str, Any]) -> PrepareConfig:
    return section(PrepareConfig, get_path(params, "prepare", {}), "prepare")


def fetch_config(params: Mapping[str, Any]) -> FetchConfig:
    return section(FetchConfig, get_path(params, "fetch", {}), "fetch")
