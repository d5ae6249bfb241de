"""Find the evaluated runs of a dataset and load their metrics.

A run is `data/<ds>/runs/<backbone>/<variant>/eval/{metrics.json, per_sample.parquet}` as written by the
evaluation stage. Runs named in params but not evaluated are reported as missing, not silently dropped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ur4rec.paths import DatasetPaths

BASE = "base"


@dataclass(frozen=True)
class Run:
    backbone: str
    variant: str
    eval_dir: Path
    metrics: dict[str, float]

    @property
    def per_sample(self) -> Path:
        return self.eval_dir / "per_sample.parquet"


@dataclass
class RunSet:
    dataset: str
    runs: dict[tuple[str, str], Run] = field(default_factory=dict)
    missing: list[tuple[str, str]] = field(default_factory=list)

    def get(self, backbone: str, variant: str) -> Run | None:
        return self.runs.get((backbone, variant))

    def variants_of(self, backbone: str) -> list[str]:
        return [v for (b, v) in self.runs if b == backbone]


def collect_runs(dataset: str, backbones: list[str], variants: list[str], root: Path | None = None) -> RunSet:
    """Load every (backbone, variant) run; Base is always looked for first."""
    paths = DatasetPaths(dataset, root) if root else DatasetPaths(dataset)
    found = RunSet(dataset)
    for backbone in backbones:
        for variant in [BASE, *[v for v in variants if v != BASE]]:
            eval_dir = paths.run(backbone, variant) / "eval"
            metrics_file = eval_dir / "metrics.json"
            if not metrics_file.exists() or not (eval_dir / "per_sample.parquet").exists():
                found.missing.append((backbone, variant))
                continue
            metrics = json.loads(metrics_file.read_text())
            found.runs[(backbone, variant)] = Run(backbone, variant, eval_dir, {
                k: float(v) for k, v in metrics.items() if "@" in k
            })
    return found
