"""Paired t-tests on per-sample metrics."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from scipy import stats

from ur4rec.eval.significance import compare_runs, paired_t_test


def test_matches_scipy_paired_t_test():
    rng = np.random.default_rng(0)
    a = rng.random(50)
    b = a + 0.1 + rng.normal(0, 0.05, 50)
    result = paired_t_test(a, b, "ndcg@10")
    reference = stats.ttest_rel(b, a)
    assert result.statistic == pytest.approx(reference.statistic)
    assert result.pvalue == pytest.approx(reference.pvalue)
    assert result.significant() and result.mean_diff == pytest.approx((b - a).mean())


def test_no_difference_is_not_significant():
    a = np.array([0.1, 0.5, 0.2])
    result = paired_t_test(a, a.copy())
    assert result.pvalue == 1.0 and not result.significant()
    with pytest.raises(ValueError, match="equal length"):
        paired_t_test(a, a[:2])


def test_compare_runs_joins_on_sample_id(tmp_path):
    rng = np.random.default_rng(1)
    ids = np.arange(40)
    a = rng.random(40)
    b = a + rng.normal(0.05, 0.02, 40)
    pl.DataFrame({"sample_id": ids, "ndcg@10": a}).write_parquet(tmp_path / "a.parquet")
    order = rng.permutation(40)  # another row order: the join pairs them by id
    pl.DataFrame({"sample_id": ids[order], "ndcg@10": b[order]}).write_parquet(tmp_path / "b.parquet")
    result = compare_runs(tmp_path / "a.parquet", tmp_path / "b.parquet", "ndcg@10")
    assert result.statistic == pytest.approx(stats.ttest_rel(b, a).statistic)
    pl.DataFrame({"sample_id": ids[:30], "ndcg@10": b[:30]}).write_parquet(tmp_path / "c.parquet")
    with pytest.raises(ValueError, match="share only 30 sample_ids"):
        compare_runs(tmp_path / "a.parquet", tmp_path / "c.parquet", "ndcg@10")
