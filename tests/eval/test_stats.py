"""User-level statistics: per-user means, bootstrap over users, paired tests, Holm, the MDE."""

import numpy as np
import pytest
from scipy import stats

from ur4rec.eval.stats import (
    bootstrap_ci,
    holm,
    min_detectable_effect,
    paired_test,
    per_user_means,
)


def test_per_user_means_average_a_users_lists_first():
    users, means = per_user_means(np.array([3, 1, 3, 3, 1]), np.array([1.0, 0.0, 0.0, 0.5, 1.0]))
    assert users.tolist() == [1, 3] and means.tolist() == [0.5, 0.5]


def test_paired_test_matches_scipy_and_brackets_the_difference():
    rng = np.random.default_rng(0)
    a = rng.random(50)
    b = a + 0.1 + rng.normal(0, 0.05, 50)
    result = paired_test(a, b)
    reference = stats.ttest_rel(b, a)
    assert result.statistic == pytest.approx(reference.statistic) and result.pvalue == pytest.approx(reference.pvalue)
    assert result.ci_low < result.diff < result.ci_high and result.diff == pytest.approx((b - a).mean())
    same = paired_test(a, a.copy())
    assert same.pvalue == 1.0 and same.statistic == 0.0
    with pytest.raises(ValueError, match="equal length"):
        paired_test(a, a[:2])


def test_holm_matches_its_definition():
    p = np.array([0.01, 0.04, 0.03, 0.005])
    # sorted: 0.005*4=0.02, 0.01*3=0.03, 0.03*2=0.06, 0.04*1=0.04 -> running max 0.02, 0.03, 0.06, 0.06
    assert holm(p).tolist() == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([]).size == 0 and holm([0.9, 0.8]).max() <= 1.0


def test_bootstrap_ci_covers_the_mean_at_about_the_nominal_rate():
    rng = np.random.default_rng(1)
    covered = 0
    for i in range(60):
        sample = rng.normal(0.3, 0.2, 94)
        low, high = bootstrap_ci(sample, n_resamples=400, seed=i)
        covered += low <= 0.3 <= high
    assert covered >= 50


def test_minimum_detectable_effect_has_its_power():
    """Simulated paired differences of exactly the MDE are detected about 80% of the time."""
    sd, n = 0.25, 94
    mde = min_detectable_effect(sd, n)
    assert mde == pytest.approx((stats.t.ppf(0.975, n - 1) + stats.t.ppf(0.8, n - 1)) * sd / np.sqrt(n))
    rng = np.random.default_rng(2)
    samples = rng.normal(mde, sd, (4000, n))
    hits = (stats.ttest_1samp(samples, 0, axis=1).pvalue < 0.05).mean()
    assert 0.77 < hits < 0.83
    assert min_detectable_effect(sd, 4 * n) == pytest.approx(mde / 2, rel=0.02)
