"""Frozen candidate lists: the target plus negatives the user never interacted with, sampled once."""

from __future__ import annotations

import numpy as np
import polars as pl
from tqdm import tqdm

from ur4rec.data.schema import CatalogueTooSmall


def sample_rng(seed: int, sample_id: int) -> np.random.Generator:
    """A generator seeded by (seed, sample_id): a sample's candidates do not depend on processing order."""
    return np.random.default_rng([seed, sample_id])


def draw_negatives(rng: np.random.Generator, n_items: int, seen: np.ndarray, k: int) -> np.ndarray:
    """`k` distinct items drawn uniformly from 1..n_items minus the sorted array `seen`.

    Rejection sampling in batches keeps it cheap when the catalogue is much larger than the user's items; a
    dense catalogue falls back to choosing from the explicit complement.
    """
    available = n_items - len(seen)
    if available < k:
        raise CatalogueTooSmall(f"{available} unseen items for {k} negatives")
    if available < 4 * k:
        pool = np.setdiff1d(np.arange(1, n_items + 1, dtype=np.int64), seen, assume_unique=True)
        return rng.choice(pool, size=k, replace=False)
    picked: list[int] = []
    chosen: set[int] = set()
    while len(picked) < k:
        draws = rng.integers(1, n_items + 1, size=2 * k)
        draws = draws[~np.isin(draws, seen, assume_unique=False)]
        for item in draws.tolist():
            if item not in chosen:
                chosen.add(item)
                picked.append(item)
                if len(picked) == k:
                    break
    return np.asarray(picked, dtype=np.int64)


def candidate_lists(
    samples: pl.DataFrame, seen_by_user: dict[int, np.ndarray], n_items: int, n_candidates: int, seed: int, dataset: str
) -> pl.DataFrame:
    """(`sample_id`, `candidates`, `target_pos`): target + n_candidates-1 negatives in a seeded random order."""
    ids, cands, positions = [], [], []
    rows = samples.select("sample_id", "user_id", "target").iter_rows()
    for sample_id, user_id, target in tqdm(rows, total=samples.height, desc=f"{dataset}: candidates", unit="sample"):
        rng = sample_rng(seed, sample_id)
        seen = seen_by_user[user_id]
        try:
            negatives = draw_negatives(rng, n_items, seen, n_candidates - 1)
        except CatalogueTooSmall as exc:
            raise CatalogueTooSmall(
                f"dataset {dataset!r}: user {user_id} (sample {sample_id}) has {len(seen)} of {n_items} items, so "
                f"only {n_items - len(seen)} can be negatives but prepare.n_candidates={n_candidates} needs "
                f"{n_candidates - 1}; lower prepare.n_candidates"
            ) from exc
        order = rng.permutation(n_candidates)
        listed = np.concatenate([[target], negatives])[order]
        ids.append(sample_id)
        cands.append(listed)
        positions.append(int(np.flatnonzero(order == 0)[0]))
    return pl.DataFrame(
        {"sample_id": ids, "candidates": cands, "target_pos": positions},
        schema={"sample_id": pl.Int64, "candidates": pl.List(pl.Int64), "target_pos": pl.Int64},
    )
