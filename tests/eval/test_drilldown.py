"""What the evaluation keeps for the drill-down: candidate ranks that agree with the metrics, and a sample of
users that does not move."""

import numpy as np
import pytest

from ur4rec.eval.drilldown import candidate_ranks, sample_users
from ur4rec.eval.metrics import per_sample_metrics


def test_the_targets_rank_gives_the_metrics_including_ties():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 5, (400, 30)).astype(np.float32)  # many ties
    target = rng.integers(0, 30, 400)
    labels = np.zeros_like(scores)
    labels[np.arange(400), target] = 1
    ranks = candidate_ranks(scores)
    assert ranks.dtype == np.int16 and ranks.min() >= 1 and ranks.max() <= 30
    r = ranks[np.arange(400), target].astype(float)
    metrics = per_sample_metrics(scores, labels, [1, 10])
    assert np.allclose(metrics["ndcg@10"], np.where(r <= 10, 1 / np.log2(r + 1), 0))
    assert np.allclose(metrics["map@1"], (r == 1).astype(float))


def test_ranks_without_ties_are_a_permutation_and_ties_rank_pessimistically():
    assert candidate_ranks(np.array([[0.1, 0.9, 0.5]])).tolist() == [[3, 1, 2]]
    assert candidate_ranks(np.array([[0.5, 0.5, 0.1]])).tolist() == [[2, 2, 3]]
    with pytest.raises(ValueError):
        candidate_ranks(np.zeros(3))


def test_the_sample_is_every_user_when_few_and_fixed_otherwise():
    users = np.repeat(np.arange(50, 10, -1), 3)
    assert sample_users(users, 100).tolist() == list(range(11, 51))
    a, b = sample_users(users, 10), sample_users(users[::-1], 10)
    assert a.tolist() == b.tolist() and len(a) == 10 and np.all(np.diff(a) > 0)
    assert sample_users(users, 0).size == 0
