"""Frozen candidate lists: the target plus negatives the user never interacted with, sampled once, vectorised.

Each split is drawn from its own random stream (seeded by `prepare.seed` and the split), over its samples in
(user, position) order: the test lists depend only on the test samples, so changing how many training lists
there are never changes a single test candidate.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa

from ur4rec.data.schema import CatalogueTooSmall

CHUNK_ROWS = 32_768  # rows drawn at once: bounds memory to a few hundred MB whatever the dataset
SPLIT_STREAM = {"train": 0, "valid": 1, "test": 2}


def seen_keys(interactions: pl.DataFrame, n_items: int) -> np.ndarray:
    """Sorted `user * (n_items + 1) + item` for every interaction: a set lookup by binary search."""
    users = interactions["user_id"].to_numpy().astype(np.int64)
    items = interactions["item_id"].to_numpy().astype(np.int64)
    return np.unique(users * (n_items + 1) + items)


DENSE_CELLS = 1 << 26  # a chunk's users x items as a dense boolean table when it fits in 64 MB


def _is_seen(keys: np.ndarray, users: np.ndarray, items: np.ndarray, n_items: int,
             by_user: dict[int, np.ndarray]) -> np.ndarray:
    """`users [R]`, `items [R, m]` -> `[R, m]` True where the row's user has the item. A dense table over the
    chunk's distinct users when small (lists of one user are consecutive), else binary search over keys."""
    distinct, local = np.unique(users, return_inverse=True)
    if len(distinct) * (n_items + 1) <= DENSE_CELLS:
        table = np.zeros((len(distinct), n_items + 1), dtype=bool)
        for row, user in enumerate(distinct):
            table[row, by_user.get(int(user), ())] = True
        return table[local[:, None], items]
    wanted = users[:, None] * (n_items + 1) + items
    pos = np.searchsorted(keys, wanted).clip(max=len(keys) - 1)
    return keys[pos] == wanted


def draw_negatives(rng: np.random.Generator, users: np.ndarray, keys: np.ndarray, n_items: int, k: int,
                   seen_by_user: dict[int, np.ndarray]) -> np.ndarray:
    """`[len(users), k]` distinct negatives per row in random order, none an item of that row's user.

    Oversampled uniform draws, sorted per row so repeats sit side by side; of the distinct unseen values a
    uniformly random k are kept (random priorities, a linear-time partition) and shuffled. A row whose user
    has seen so much of the catalogue that the draws fall short takes its negatives from the complement.
    """
    width = int(k * 1.5) + 16
    draws = np.sort(rng.integers(1, n_items + 1, size=(len(users), width), dtype=np.int64), axis=1)
    keep = ~_is_seen(keys, users, draws, n_items, seen_by_user)
    keep[:, 1:] &= draws[:, 1:] != draws[:, :-1]
    ok = keep.sum(1) >= k
    priority = np.where(keep, rng.random(draws.shape), -1.0)
    picked = np.take_along_axis(draws, np.argpartition(-priority, k - 1, axis=1)[:, :k], axis=1)
    picked = rng.permuted(picked, axis=1)
    for row in np.flatnonzero(~ok):
        picked[row] = _from_complement(rng, int(users[row]), seen_by_user, n_items, k)
    return picked


def _from_complement(rng: np.random.Generator, user: int, seen_by_user: dict[int, np.ndarray], n_items: int,
                     k: int) -> np.ndarray:
    pool = np.setdiff1d(np.arange(1, n_items + 1, dtype=np.int64), seen_by_user[user], assume_unique=True)
    if len(pool) < k:
        raise CatalogueTooSmall(f"{len(pool)} unseen items for {k} negatives of user {user}")
    return rng.choice(pool, size=k, replace=False)


class Seen:
    """What each user interacted with (any split, any time): never a negative for that user."""

    def __init__(self, interactions: pl.DataFrame, n_items: int):
        self.n_items = n_items
        self.keys = seen_keys(interactions, n_items)
        self.by_user = {int(u): np.sort(np.asarray(i, dtype=np.int64))
                        for u, i in interactions.group_by("user_id").agg("item_id").iter_rows()}


def candidate_lists(samples: pl.DataFrame, split: str, seen: Seen, n_candidates: int, seed: int,
                    dataset: str) -> tuple[pl.Series, pl.Series]:
    """(`candidates`, `target_pos`) for one split's samples, in their order: the target plus
    n_candidates - 1 negatives in a seeded random order."""
    keys, seen_by_user, n_items = seen.keys, seen.by_user, seen.n_items
    rng = np.random.default_rng([seed, SPLIT_STREAM[split]])
    users = samples["user_id"].to_numpy().astype(np.int64)
    targets = samples["target"].to_numpy().astype(np.int64)
    flat = np.empty(len(users) * n_candidates, dtype=np.int64)
    target_pos = np.empty(len(users), dtype=np.int64)
    for start in range(0, len(users), CHUNK_ROWS):
        stop = min(start + CHUNK_ROWS, len(users))
        try:
            negatives = draw_negatives(rng, users[start:stop], keys, n_items, n_candidates - 1, seen_by_user)
        except CatalogueTooSmall as exc:
            raise CatalogueTooSmall(
                f"dataset {dataset!r}: {exc}, but prepare.n_candidates={n_candidates} needs {n_candidates - 1}; "
                "lower prepare.n_candidates") from exc
        # the target at a uniform position, the (already shuffled) negatives in the other slots
        pos = rng.integers(0, n_candidates, size=stop - start)
        cols = np.arange(n_candidates)[None, :]
        listed = np.take_along_axis(negatives, np.clip(cols - (cols > pos[:, None]), 0, n_candidates - 2), axis=1)
        listed[np.arange(stop - start), pos] = targets[start:stop]
        flat[start * n_candidates : stop * n_candidates] = listed.ravel()
        target_pos[start:stop] = pos
    offsets = np.arange(len(users) + 1, dtype=np.int64) * n_candidates
    candidates = pl.Series("candidates", pa.LargeListArray.from_arrays(offsets, flat), dtype=pl.List(pl.Int64))
    return candidates, pl.Series("target_pos", target_pos)
