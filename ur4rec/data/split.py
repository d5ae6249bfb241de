"""Seeded split of users into train / valid / test."""

from __future__ import annotations

import numpy as np
import polars as pl

SPLITS = ("train", "valid", "test")


def split_sizes(n_users: int, fractions: list[float]) -> tuple[int, int, int]:
    """Rounded sizes; train takes the remainder so the three always add up to `n_users`."""
    total = float(sum(fractions))
    n_valid = int(round(n_users * fractions[1] / total))
    n_test = int(round(n_users * fractions[2] / total))
    n_test = min(n_test, n_users - n_valid)
    return n_users - n_valid - n_test, n_valid, n_test


def split_users(user_ids: np.ndarray, fractions: list[float], seed: int) -> pl.DataFrame:
    """(`user_id`, `split`) for every user: a seeded permutation of the sorted ids cut 8:1:1 (by default).

    Sorting first makes the result depend only on the set of users and the seed, not on input order.
    """
    ids = np.sort(np.asarray(user_ids, dtype=np.int64))
    order = np.random.default_rng(seed).permutation(len(ids))
    n_train, n_valid, _ = split_sizes(len(ids), fractions)
    labels = np.empty(len(ids), dtype=object)
    labels[order[:n_train]] = "train"
    labels[order[n_train : n_train + n_valid]] = "valid"
    labels[order[n_train + n_valid :]] = "test"
    return pl.DataFrame({"user_id": ids, "split": labels.astype(str)}, schema={"user_id": pl.Int64, "split": pl.String})
