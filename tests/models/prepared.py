"""Prepared-format splits with a learnable signal, written by the tests (the `prepare` contract's columns).

Items fall into clusters; an item's category is its cluster. Each user likes one cluster: the history and the
target come from it, while the negatives are drawn from the whole catalogue. A model that relates candidates
to the history (or learns the clusters) ranks the target high; random ranking does not.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from ur4rec.io import write_parquet


def write_prepared(root: Path, n_clusters: int = 6, cluster_size: int = 10, n_candidates: int = 20,
                   samples: dict[str, int] | None = None, history_len: int = 12, seed: int = 0) -> Path:
    """Write items/train/valid/test parquet, and users/interactions (a user's history then target) for the
    counts the popularity offset reads, into `root` (the `prepared/` folder); return it."""
    rng = np.random.default_rng(seed)
    samples = samples or {"train": 320, "valid": 80, "test": 80}
    n_items = n_clusters * cluster_size
    cluster = (np.arange(n_items) // cluster_size) + 1           # item i+1 -> cluster
    items = pl.DataFrame({
        "item_id": np.arange(1, n_items + 1, dtype=np.int64),
        "raw_id": [str(i) for i in range(1, n_items + 1)],
        "title": [f"Item {i}" for i in range(1, n_items + 1)],
        "categories": [[f"c{c}"] for c in cluster],
        "category_ids": [[int(c)] for c in cluster],
        "attributes": ["{}"] * n_items,
    })
    root.mkdir(parents=True, exist_ok=True)
    write_parquet(root / "items.parquet", items)
    sample_id, user_id = 0, 0
    users, interactions = [], []
    for split, count in samples.items():
        rows = []
        for _ in range(count):
            user_id += 1
            liked = np.flatnonzero(cluster == rng.integers(1, n_clusters + 1)) + 1
            length = int(rng.integers(3, history_len + 1))
            history = rng.choice(liked, size=min(length, len(liked) - 1), replace=False)
            target = int(rng.choice(np.setdiff1d(liked, history)))
            pool = np.setdiff1d(np.arange(1, n_items + 1), np.append(history, target))
            candidates = np.append(rng.choice(pool, size=n_candidates - 1, replace=False), target)
            rng.shuffle(candidates)
            rows.append({
                "sample_id": sample_id, "user_id": user_id, "target": target,
                "history": history.astype(np.int64).tolist(), "candidates": candidates.astype(np.int64).tolist(),
                "target_pos": int(np.flatnonzero(candidates == target)[0]),
            })
            sample_id += 1
            users.append({"user_id": user_id, "split": split})
            interactions += [{"user_id": user_id, "item_id": int(i), "timestamp": t}
                             for t, i in enumerate([*history.tolist(), target])]
        frame = pl.DataFrame(rows, schema={
            "sample_id": pl.Int64, "user_id": pl.Int64, "target": pl.Int64, "history": pl.List(pl.Int64),
            "candidates": pl.List(pl.Int64), "target_pos": pl.Int64,
        })
        write_parquet(root / f"{split}.parquet", frame)
    write_parquet(root / "users.parquet", pl.DataFrame(users, schema={"user_id": pl.Int64, "split": pl.Utf8}))
    write_parquet(root / "interactions.parquet", pl.DataFrame(
        interactions, schema={"user_id": pl.Int64, "item_id": pl.Int64, "timestamp": pl.Int64}))
    return root
