"""Paired significance tests between two runs evaluated on the same test samples (the paper's paired t-test,
p < 0.05)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
from scipy import stats


@dataclass(frozen=True)
class PairedTest:
    metric: str
    n: int
    mean_a: float
    mean_b: float
    statistic: float
    pvalue: float

    @property
    def mean_diff(self) -> float:
        return self.mean_b - self.mean_a

    def significant(self, alpha: float = 0.05) -> bool:
        return bool(self.pvalue < alpha)


def paired_t_test(a: np.ndarray, b: np.ndarray, metric: str = "") -> PairedTest:
    """Two-sided paired t-test of per-sample values `b` against `a` (same samples, same order).

    Identical inputs give statistic 0 and p-value 1 (scipy returns NaN there: no difference is no evidence).
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired test needs two 1-d arrays of equal length, got {a.shape} and {b.shape}")
    if len(a) < 2:
        raise ValueError(f"paired test needs at least 2 samples, got {len(a)}")
    if np.array_equal(a, b):
        statistic, pvalue = 0.0, 1.0
    else:
        result = stats.ttest_rel(b, a)
        statistic, pvalue = float(result.statistic), float(result.pvalue)
    return PairedTest(metric, len(a), float(a.mean()), float(b.mean()), statistic, pvalue)


def compare_runs(per_sample_a: str | Path, per_sample_b: str | Path, metric: str) -> PairedTest:
    """Paired t-test of `metric` between two `per_sample.parquet` files, joined on `sample_id`.

    The two runs must cover exactly the same samples; anything else is an error (a paired test over a
    silently smaller intersection would not be the comparison asked for).
    """
    a = pl.read_parquet(per_sample_a, columns=["sample_id", metric])
    b = pl.read_parquet(per_sample_b, columns=["sample_id", metric])
    joined = a.join(b, on="sample_id", how="inner", suffix="_b")
    if joined.height != a.height or joined.height != b.height:
        raise ValueError(
            f"{per_sample_a} ({a.height} samples) and {per_sample_b} ({b.height}) share only "
            f"{joined.height} sample_ids; a paired test needs the same test samples"
        )
    return paired_t_test(joined[metric].to_numpy(), joined[f"{metric}_b"].to_numpy(), metric)
