"""MAP@k / NDCG@k against hand-computed values, pessimistic ties, and their invariances."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ur4rec.eval.metrics import (
    map_at_k,
    map_at_k_per_sample,
    metric_names,
    ndcg_at_k,
    ndcg_at_k_per_sample,
    parse_metric,
    per_sample_metrics,
)


def one_hot(n: int, pos: int) -> np.ndarray:
    labels = np.zeros((1, n))
    labels[0, pos] = 1
    return labels


def test_target_ranked_third():
    scores = np.array([[0.1, 0.9, 0.5, 0.7, 0.2]])   # ranking: idx1, idx3, idx2, idx4, idx0
    labels = one_hot(5, 2)                             # target idx2 -> rank 3
    assert ndcg_at_k(scores, labels, 5) == pytest.approx(1 / math.log2(4))  # 0.5
    assert ndcg_at_k(scores, labels, 3) == pytest.approx(0.5)
    assert ndcg_at_k(scores, labels, 2) == 0.0
    assert map_at_k(scores, labels, 5) == pytest.approx(1 / 3)
    assert map_at_k(scores, labels, 2) == 0.0
    assert map_at_k(scores, labels, 1) == ndcg_at_k(scores, labels, 1) == 0.0


def test_target_ranked_first_is_perfect():
    scores = np.array([[3.0, 1.0, 2.0]])
    for k in (1, 5, 10):
        assert ndcg_at_k(scores, one_hot(3, 0), k) == 1.0
        assert map_at_k(scores, one_hot(3, 0), k) == 1.0


def test_mean_over_samples():
    scores = np.array([[0.9, 0.1, 0.5], [0.9, 0.1, 0.5]])
    labels = np.array([[1, 0, 0], [0, 1, 0]])          # ranks 1 and 3
    assert ndcg_at_k(scores, labels, 3) == pytest.approx((1 + 0.5) / 2)
    assert map_at_k(scores, labels, 3) == pytest.approx((1 + 1 / 3) / 2)
    np.testing.assert_allclose(ndcg_at_k_per_sample(scores, labels, 3), [1.0, 0.5])
    np.testing.assert_allclose(map_at_k_per_sample(scores, labels, 3), [1.0, 1 / 3])


def test_ties_are_broken_pessimistically():
    """A constant scorer puts the target last, wherever it is stored."""
    scores = np.zeros((3, 4))
    labels = np.eye(4)[:3]                             # targets at positions 0, 1, 2
    np.testing.assert_allclose(ndcg_at_k_per_sample(scores, labels, 4), [1 / math.log2(5)] * 3)
    np.testing.assert_allclose(map_at_k_per_sample(scores, labels, 4), [1 / 4] * 3)
    # tied with one other candidate only: rank 2, not 1
    assert map_at_k(np.array([[1.0, 1.0, 0.0]]), one_hot(3, 0), 3) == pytest.approx(1 / 2)


def test_several_relevant_items():
    scores = np.array([[0.9, 0.8, 0.7, 0.1]])
    labels = np.array([[1, 0, 1, 0]])                  # relevant at ranks 1 and 3
    dcg = 1 + 1 / math.log2(4)
    idcg = 1 + 1 / math.log2(3)
    assert ndcg_at_k(scores, labels, 3) == pytest.approx(dcg / idcg)
    assert map_at_k(scores, labels, 3) == pytest.approx((1 / 1 + 2 / 3) / 2)
    assert map_at_k(scores, labels, 1) == pytest.approx(1.0)  # denominator min(k, R) = 1


def test_random_ranking_of_100_candidates_gives_the_reference_ndcg():
    """E[NDCG@10] for a uniform rank among 100 is sum_{r<=10} 1/log2(r+1) / 100 = 0.0454 (the ~0.046 reference)."""
    rng = np.random.default_rng(0)
    n = 8000
    labels = np.zeros((n, 100))
    labels[np.arange(n), rng.integers(0, 100, n)] = 1
    expected = sum(1 / math.log2(r + 1) for r in range(1, 11)) / 100
    assert ndcg_at_k(rng.random((n, 100)), labels, 10) == pytest.approx(expected, abs=0.004)


def test_bad_inputs_are_errors():
    with pytest.raises(ValueError, match="no relevant candidate"):
        ndcg_at_k(np.zeros((2, 3)), np.array([[0, 1, 0], [0, 0, 0]]), 3)
    with pytest.raises(ValueError, match="NaN score in sample row 1"):
        map_at_k(np.array([[1.0, 0.0], [np.nan, 0.0]]), np.eye(2), 1)
    with pytest.raises(ValueError, match="must both be"):
        ndcg_at_k(np.zeros((2, 3)), np.zeros((2, 4)), 3)
    with pytest.raises(ValueError, match="k must be >= 1"):
        ndcg_at_k(np.zeros((1, 3)), one_hot(3, 0), 0)


def test_metric_names():
    assert metric_names([1, 10]) == ["map@1", "ndcg@1", "map@10", "ndcg@10"]
    assert parse_metric("ndcg@10") == ("ndcg", 10)
    for bad in ("recall@10", "ndcg", "ndcg@x", "ndcg@0"):
        with pytest.raises(ValueError, match="unknown metric"):
            parse_metric(bad)
    values = per_sample_metrics(np.array([[2.0, 1.0]]), one_hot(2, 1), [1, 5])
    assert values["map@1"][0] == values["ndcg@1"][0] == 0.0


lists = st.integers(2, 12).flatmap(lambda n: st.tuples(
    st.lists(st.integers(-3, 3).map(float), min_size=n, max_size=n), st.integers(0, n - 1), st.integers(1, 15),
    st.permutations(list(range(n)))))


@settings(max_examples=200, deadline=None)
@given(lists)
def test_metrics_do_not_depend_on_storage_order(case):
    scores, target, k, perm = case
    scores = np.array([scores])
    labels = one_hot(scores.shape[1], target)
    for fn in (ndcg_at_k, map_at_k):
        value = fn(scores, labels, k)
        assert 0.0 <= value <= 1.0
        assert fn(scores[:, perm], labels[:, perm], k) == pytest.approx(value)
    assert map_at_k(scores, labels, 1) == ndcg_at_k(scores, labels, 1)
    assert map_at_k(scores, labels, k) <= ndcg_at_k(scores, labels, k) + 1e-12
