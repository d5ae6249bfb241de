"""What the evaluation keeps for the report's per-user drill-down: every candidate's rank, and which test users
are the drill-down's sample (the same users for every run of a dataset, so their lists line up across arms)."""

from __future__ import annotations

import numpy as np

SAMPLE_SEED = 0  # fixed: the sample must not move with a run's seed, arm or backbone


def candidate_ranks(scores: np.ndarray) -> np.ndarray:
    """`[n_samples, n_candidates]` int16 ranks (1 = top) of every candidate by descending score, ties broken
    pessimistically as in `ur4rec.eval.metrics`: a candidate ranks below every other candidate of equal score,
    so the target's rank is the one its metrics were computed from."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2:
        raise ValueError(f"scores must be [n_samples, n_candidates]; got {scores.shape}")
    n, c = scores.shape
    if c > np.iinfo(np.int16).max:
        raise ValueError(f"{c} candidates per list do not fit int16 ranks")
    ranks = np.empty((n, c), dtype=np.int16)
    for row in range(n):
        ordered = np.sort(scores[row])
        # rank = 1 + #greater + #equal others = c - #smaller
        ranks[row] = c - np.searchsorted(ordered, scores[row], side="left")
    return ranks


def sample_users(user_ids: np.ndarray, n: int) -> np.ndarray:
    """The sorted drill-down sample: every distinct user when there are at most `n`, else `n` of them drawn
    with a fixed seed."""
    users = np.unique(np.asarray(user_ids))
    if n <= 0:
        return users[:0]
    if users.size <= n:
        return users
    return np.sort(np.random.default_rng(SAMPLE_SEED).choice(users, n, replace=False))
