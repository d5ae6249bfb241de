"""Typed `report:` settings."""

from __future__ import annotations

from dataclasses import dataclass

from ur4rec.config import ParamsError


@dataclass(frozen=True)
class ReportConfig:
    alpha: float = 0.05              # family-wise level of the Holm-adjusted marks
    focus_metric: str = "ndcg@10"    # metric of the p-value tables, the MDE and the plots
    power: float = 0.8               # power of the minimum detectable effect
    bootstrap: int = 2000            # bootstrap resamples of users for each CI

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 1 or not 0 < self.power < 1:
            raise ParamsError("report.alpha and report.power must lie strictly between 0 and 1")
        if self.bootstrap < 100:
            raise ParamsError(f"report.bootstrap must be >= 100, got {self.bootstrap}")
