"""Statistics of a comparison between arms evaluated on the same test lists, with users as the unit.

A test user contributes several lists, and lists of one user are not independent, so every statistic here
works on per-user values: a user's lists are averaged first (and, with several seeds, the seeds too). Then:

- `bootstrap_ci`: a 95% percentile-bootstrap interval of the mean over users (users resampled, not lists);
- `paired_test`: a two-sided paired t-test between two arms on the same users;
- `holm`: Holm's step-down adjustment of a family of p-values (strong family-wise error control);
- `min_detectable_effect`: the smallest paired mean difference a two-sided paired t-test detects with the
  given power at level alpha, from the SD of the per-user differences.

Pure functions of arrays; scipy does the distributions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats


def per_user_means(user_ids: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sorted distinct users, each user's mean value over their lists)."""
    users, inverse = np.unique(np.asarray(user_ids), return_inverse=True)
    sums = np.bincount(inverse, weights=np.asarray(values, dtype=np.float64), minlength=len(users))
    counts = np.bincount(inverse, minlength=len(users))
    return users, sums / counts


def bootstrap_ci(per_user: np.ndarray, level: float = 0.95, n_resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """Percentile-bootstrap CI of the mean of `per_user` (users resampled with replacement)."""
    per_user = np.asarray(per_user, dtype=np.float64)
    if len(per_user) < 2 or np.all(per_user == per_user[0]):
        value = float(per_user.mean()) if len(per_user) else float("nan")
        return value, value
    result = stats.bootstrap((per_user,), np.mean, confidence_level=level, n_resamples=n_resamples,
                             method="percentile", random_state=np.random.default_rng(seed), vectorized=True)
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


@dataclass(frozen=True)
class PairedTest:
    """Arm b against arm a on the same users: `diff = mean_b - mean_a`."""

    n_users: int
    mean_a: float
    mean_b: float
    statistic: float
    pvalue: float
    sd_diff: float
    ci_low: float
    ci_high: float

    @property
    def diff(self) -> float:
        return self.mean_b - self.mean_a


def paired_test(a: np.ndarray, b: np.ndarray, ci_seed: int = 0, n_resamples: int = 2000) -> PairedTest:
    """Two-sided paired t-test of per-user values `b` against `a` (same users, same order), with a bootstrap
    CI of the mean difference. Identical inputs give statistic 0 and p = 1 (scipy's NaN there means no evidence)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired test needs two 1-d arrays of equal length, got {a.shape} and {b.shape}")
    if len(a) < 2:
        raise ValueError(f"paired test needs at least 2 users, got {len(a)}")
    diff = b - a
    if np.all(diff == diff[0]) and diff[0] == 0:
        statistic, pvalue = 0.0, 1.0
    else:
        result = stats.ttest_rel(b, a)
        statistic, pvalue = float(result.statistic), float(result.pvalue)
        if np.isnan(pvalue):  # a constant non-zero difference: certain, but t is undefined
            statistic, pvalue = float(np.sign(diff[0]) * np.inf), 0.0
    low, high = bootstrap_ci(diff, n_resamples=n_resamples, seed=ci_seed)
    return PairedTest(len(a), float(a.mean()), float(b.mean()), statistic, pvalue, float(diff.std(ddof=1)), low, high)


def holm(pvalues: list[float] | np.ndarray) -> np.ndarray:
    """Holm-adjusted p-values, in the input order (monotone, capped at 1)."""
    p = np.asarray(pvalues, dtype=np.float64)
    if p.size == 0:
        return p
    order = np.argsort(p, kind="stable")
    m = len(p)
    stepped = np.maximum.accumulate((m - np.arange(m)) * p[order])
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(stepped, 1.0)
    return adjusted


def min_detectable_effect(sd_diff: float, n_users: int, alpha: float = 0.05, power: float = 0.8) -> float:
    """Smallest true mean difference a two-sided paired t-test on `n_users` detects with probability `power`
    at level `alpha`: (t_{1-alpha/2} + t_{power}) * sd / sqrt(n), with n - 1 degrees of freedom."""
    if n_users < 2 or not np.isfinite(sd_diff):
        return float("nan")
    df = n_users - 1
    return float((stats.t.ppf(1 - alpha / 2, df) + stats.t.ppf(power, df)) * sd_diff / np.sqrt(n_users))
