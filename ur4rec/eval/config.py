"""Typed `evaluate:` settings: what the test evaluation reports."""

from __future__ import annotations

from dataclasses import dataclass, field

from ur4rec.config import ParamsError


@dataclass(frozen=True)
class EvalConfig:
    """MAP@k and NDCG@k for each k, on the test split."""

    ks: list[int] = field(default_factory=lambda: [1, 5, 10, 20])
    batch_size: int = 256
    progress: bool = True
    drilldown_users: int = 100  # test users whose retriever attention is kept for the report's drill-down

    def __post_init__(self) -> None:
        if not self.ks or any(k < 1 for k in self.ks):
            raise ParamsError(f"evaluate.ks must be a non-empty list of integers >= 1, got {self.ks}")
        if self.drilldown_users < 0:
            raise ParamsError(f"evaluate.drilldown_users must be >= 0, got {self.drilldown_users}")
        if self.batch_size < 1:
            raise ParamsError(f"evaluate.batch_size must be >= 1, got {self.batch_size}")
