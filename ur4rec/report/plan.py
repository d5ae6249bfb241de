"""What a report covers, as plain typed data handed down by the orchestration layer (no params below it)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ur4rec.report.config import ReportConfig
from ur4rec.retriever.variants import VariantConfig


@dataclass(frozen=True)
class Arm:
    """A column group of the tables: `base` (variant None) or a variant, with its resolved K per backbone."""

    name: str
    variant: VariantConfig | None
    proxies: dict[str, int] = field(default_factory=dict)  # backbone -> K (retriever variants only)

    @property
    def is_base(self) -> bool:
        return self.variant is None

    @property
    def is_control(self) -> bool:
        return self.variant is not None and self.variant.is_control

    @property
    def is_kar(self) -> bool:
        return self.variant is not None and self.variant.is_kar

    @property
    def family(self) -> str:
        return "main" if self.variant is None else self.variant.family


@dataclass(frozen=True)
class ReportPlan:
    dataset: str
    backbones: list[str]
    arms: list[Arm]            # base first
    seeds: list[int]
    ks: list[int]
    n_candidates: int
    cfg: ReportConfig
    leaky: bool = False        # the LLM saw the targets (llm_history_cut: none)
    clean_twin: str | None = None  # the clean dataset a LEAKY one mirrors
    models: dict[str, str] = field(default_factory=dict)  # backbone -> its registered model (Table 5 baselines)
    n_negatives: int = 10      # pre-training M, for the chance level of its curves
    references: list[str] = field(default_factory=list)  # reference scorers shown as rows of every table (toppop, ...)
    drilldown_users: int = 100  # the page's drill-down sample when no run saved one (evaluate.drilldown_users)
    paper_table: str | None = None  # the paper's Table 2 columns this dataset stands for (ml-1m, ...), printed beside
    generations: int = 1       # LLM generations: seed k read generation k mod this (llm.generations)

    @property
    def metrics(self) -> list[str]:
        return [f"{m}@{k}" for m in ("map", "ndcg") for k in self.ks]

    def arm(self, name: str) -> Arm:
        return next(a for a in self.arms if a.name == name)
