"""Typed views of the `fetch`, `dataset.<name>` and `prepare` params sections."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Union

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
    prepare: dict[str, Any] = field(default_factory=dict)  # this dataset's overrides of the `prepare:` section
    clean_twin: Optional[str] = None  # a LEAKY dataset: the clean dataset it mirrors (the report compares gains)
    paper_table: Optional[str] = None  # the paper's Table 2 columns it stands for (ml-1m | amazon-books | steam),
                                       # printed beside the report's own numbers

    def __post_init__(self) -> None:
        if self.k_core < 1:
            raise ParamsError(f"k_core must be an integer >= 1 (1 keeps everything), got {self.k_core}")
        if self.min_rating < 0:
            raise ParamsError(f"min_rating must be >= 0, got {self.min_rating}")
        if self.paper_table not in (None, "ml-1m", "amazon-books", "steam"):
            raise ParamsError(f"paper_table: {self.paper_table!r} is not one of ml-1m, amazon-books, steam (or null)")


PROTOCOLS = ("last", "kar")
HISTORY_CUTS = ("before_targets", "none")


@dataclass(frozen=True)
class PrepareConfig:
    """How users become reranking lists and what the LLM may see of them (see `ur4rec.data.samples`).

    `protocol: last`: the last `eval_samples_per_user` interactions of each valid/test user and the last
    `train_samples_per_user` (or `all`) of each training user become lists; no target comes before a user's
    first `llm_history_len` interactions, and the LLM sees the `llm_history_len` items just before the user's
    earliest target. `protocol: kar` (KAR's): the LLM sees the first half of each sequence (at most
    `kar_llm_history_max` items) and every later interaction is a list, for every split.
    """

    seed: int = 42
    split: list[float] = field(default_factory=lambda: [0.8, 0.1, 0.1])
    n_candidates: int = 100
    history_len: int = 150
    protocol: str = "last"
    train_samples_per_user: Union[int, str] = 10  # an int, or "all"
    eval_samples_per_user: int = 10
    llm_history_len: int = 10
    kar_llm_history_max: int = 30
    llm_history_cut: str = "before_targets"  # none: the LLM sees the whole sequence (LEAKY, diagnostic only)
    on_bad_line: str = "error"  # error | skip
    duplicates: str = "earliest"  # earliest | latest: which of a repeated (user, item) pair is kept

    def __post_init__(self) -> None:
        if len(self.split) != 3 or any(x < 0 for x in self.split) or sum(self.split) <= 0:
            raise ParamsError(f"prepare.split must be three non-negative fractions, got {self.split}")
        if self.n_candidates < 2:
            raise ParamsError(f"prepare.n_candidates must be >= 2, got {self.n_candidates}")
        for name in ("history_len", "llm_history_len", "kar_llm_history_max"):
            if getattr(self, name) < 0:
                raise ParamsError(f"prepare.{name} must be >= 0, got {getattr(self, name)}")
        if self.eval_samples_per_user < 1:
            raise ParamsError(f"prepare.eval_samples_per_user must be >= 1, got {self.eval_samples_per_user}")
        per_train = self.train_samples_per_user
        if not (per_train == "all" or (isinstance(per_train, int) and not isinstance(per_train, bool) and per_train >= 1)):
            raise ParamsError(f"prepare.train_samples_per_user must be an integer >= 1 or 'all', got {per_train!r}")
        if self.protocol not in PROTOCOLS:
            raise ParamsError(f"prepare.protocol must be one of {PROTOCOLS}, got {self.protocol!r}")
        if self.llm_history_cut not in HISTORY_CUTS:
            raise ParamsError(f"prepare.llm_history_cut must be one of {HISTORY_CUTS}, got {self.llm_history_cut!r}")
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
