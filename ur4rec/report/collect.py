"""Find the evaluated runs of a dataset and load their per-list metrics, keyed by (backbone, arm, seed).

A run is `data/<ds>/runs/<backbone>/seed<k>/eval/<arm>/per_sample.parquet` as written by the evaluation stage.
Runs the plan names but that are not evaluated are reported as missing, never silently dropped. The reference
scorers (`data/<ds>/reference/<scorer>/per_sample.parquet`, the same format) are loaded beside them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from ur4rec.eval.stats import per_user_means
from ur4rec.paths import DATA_ROOT, DatasetPaths, RunPaths
from ur4rec.report.plan import ReportPlan


@dataclass
class RunResult:
    paths: RunPaths | None  # None: a reference scorer (no training)
    frame: pl.DataFrame  # sample_id, user_id, one column per metric

    def mean(self, metric: str) -> float:
        return float(self.frame[metric].mean())

    def per_user(self, metric: str) -> tuple[np.ndarray, np.ndarray]:
        return per_user_means(self.frame["user_id"].to_numpy(), self.frame[metric].to_numpy())


@dataclass
class Results:
    dataset: str
    runs: dict[tuple[str, str, int], RunResult] = field(default_factory=dict)
    missing: list[tuple[str, str, int]] = field(default_factory=list)
    references: dict[str, RunResult] = field(default_factory=dict)
    missing_references: list[str] = field(default_factory=list)

    def seeds(self, backbone: str, arm: str) -> list[int]:
        return sorted(s for (b, a, s) in self.runs if b == backbone and a == arm)

    def has(self, backbone: str, arm: str) -> bool:
        return bool(self.seeds(backbone, arm))

    def values(self, backbone: str, arm: str, metric: str) -> list[float]:
        """The list-level mean of each seed."""
        return [self.runs[(backbone, arm, s)].mean(metric) for s in self.seeds(backbone, arm)]

    def user_matrix(self, backbone: str, arm: str, metric: str, seeds: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """(users, per-user means averaged over `seeds`)."""
        rows = [self.runs[(backbone, arm, s)].per_user(metric) for s in seeds]
        users = rows[0][0]
        for other, _ in rows[1:]:
            if not np.array_equal(other, users):
                raise ValueError(f"{self.dataset}/{backbone}/{arm}: seeds were evaluated on different test users")
        return users, np.mean([v for _, v in rows], axis=0)


def collect(plan: ReportPlan, root: Path = DATA_ROOT) -> Results:
    paths = DatasetPaths(plan.dataset, root)
    found = Results(plan.dataset)
    for backbone in plan.backbones:
        for arm in plan.arms:
            for seed in plan.seeds:
                run = paths.run(backbone, arm.name, seed)
                per_sample = run.eval / "per_sample.parquet"
                if not per_sample.exists():
                    found.missing.append((backbone, arm.name, seed))
                    continue
                found.runs[(backbone, arm.name, seed)] = RunResult(run, pl.read_parquet(per_sample))
    for name in plan.references:
        per_sample = paths.reference / name / "per_sample.parquet"
        if per_sample.exists():
            found.references[name] = RunResult(None, pl.read_parquet(per_sample))
        else:
            found.missing_references.append(name)
    return found


def read_json(path: Path) -> dict | None:
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None
