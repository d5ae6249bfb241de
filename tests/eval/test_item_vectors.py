"""The co-consumption AUC of item representations: pairs, centred cosine, ties, and what it can tell apart."""

import numpy as np
import pytest

from ur4rec.eval.item_vectors import (
    centred_cosine,
    consecutive_pairs,
    one_hot,
    pair_auc,
    popularity_auc,
    vector_auc,
)


def sequences(n_users=300, length=20, n_items=60, seed=0):
    """Users who stay inside one of three blocks of items: consecutive items share a block."""
    rng = np.random.default_rng(seed)
    users, items, times = [], [], []
    for u in range(1, n_users + 1):
        block = rng.integers(3)
        users += [u] * length
        items += list(1 + block * (n_items // 3) + rng.integers(n_items // 3, size=length))
        times += list(rng.permutation(length))
    return np.array(users), np.array(items), np.array(times)


def test_pairs_follow_time_within_a_user_and_never_cross_users():
    users = np.array([1, 1, 1, 2, 2])
    items = np.array([3, 1, 2, 4, 5])
    times = np.array([30, 10, 20, 1, 2])
    first, second, other = consecutive_pairs(users, items, times, n_pairs=10, n_items=9)
    assert sorted(zip(first.tolist(), second.tolist())) == [(1, 2), (2, 3), (4, 5)]  # not (3, 4): two users
    assert ((other != first) & (other != second) & (other >= 1) & (other <= 9)).all()


def test_block_vectors_tell_co_consumed_items_apart_and_noise_does_not():
    users, items, times = sequences()
    first, second, other = consecutive_pairs(users, items, times, n_pairs=2000, n_items=60)
    blocks = one_hot([[1 + (i - 1) // 20] for i in range(1, 61)], 60)
    assert vector_auc(blocks, first, second, other) > 0.8
    noise = np.random.default_rng(1).normal(size=(61, 16))
    assert abs(vector_auc(noise, first, second, other) - 0.5) < 0.05
    # A shared offset is removed before the cosine: it cannot make every pair look alike.
    assert vector_auc(blocks + 100.0, first, second, other) == pytest.approx(vector_auc(blocks, first, second, other))


def test_ties_count_half_and_popularity_scores_the_next_item():
    assert pair_auc(np.array([1.0, 0.0, 2.0]), np.array([1.0, 1.0, 0.0])) == pytest.approx(0.5)
    counts = np.array([0.0, 5.0, 1.0, 3.0])
    assert popularity_auc(counts, np.array([1, 3]), np.array([2, 2])) == 1.0
    with pytest.raises(ValueError, match="equal, non-empty"):
        pair_auc(np.array([]), np.array([]))


def test_a_zero_vector_scores_zero():
    vectors = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])  # item 3 is the mean: zero once centred
    assert centred_cosine(vectors, np.array([3]), np.array([1]))[0] == 0.0
