"""Tiny prepared + LLM tables in the contract's Parquet schemas, written by the encode tests themselves."""

from __future__ import annotations

import random
from pathlib import Path

import pyarrow as pa

from ur4rec.io import write_parquet
from ur4rec.paths import DatasetPaths

GENRES = ["Action", "Comedy", "Drama", "Sci-Fi", "Romance", "Thriller", "Animation"]
TITLES = ["Heat (1995)", "Fargo (1996)", "Amélie (2001)", "Star Wars (1977)", 'The "Great" Escape (1963)']
TASTES = ["fast action and heists", "quirky comedies", "space operas", "slow romantic dramas", "dark thrillers"]


def write_prepared(paths: DatasetPaths, n_items: int = 12, n_users: int = 6, seed: int = 0) -> None:
    rng = random.Random(seed)
    item_ids = list(range(1, n_items + 1))
    titles = [TITLES[i % len(TITLES)] if i < len(TITLES) else f"Movie {i} ({1950 + i})" for i in range(n_items)]
    cats = [rng.sample(GENRES, k=rng.randint(1, 3)) for _ in item_ids]
    write_parquet(paths.prepared / "items.parquet", pa.table({
        "item_id": pa.array(item_ids, pa.int64()),
        "raw_id": [str(100 + i) for i in item_ids],
        "title": titles,
        "categories": pa.array(cats, pa.list_(pa.string())),
        "category_ids": pa.array([[GENRES.index(c) + 1 for c in cs] for cs in cats], pa.list_(pa.int64())),
        "attributes": ["{}"] * n_items,
    }))
    # Histories come from their own generator over the first items, so adding items changes no user.
    hist_rng, pool = random.Random(seed + 1), item_ids[:10]
    histories = [hist_rng.sample(pool, k=hist_rng.randint(1, 5)) for _ in range(n_users)]
    write_parquet(paths.prepared / "users.parquet", pa.table({
        "user_id": pa.array(range(1, n_users + 1), pa.int64()),
        "raw_id": [f"u{u}" for u in range(1, n_users + 1)],
        "split": [("train", "valid", "test")[u % 3] for u in range(n_users)],
        "gender": ["M"] * n_users, "age": ["25"] * n_users, "occupation": [None] * n_users,
        "llm_history": pa.array(histories, pa.list_(pa.int64())),
        "llm_history_ratings": pa.array([[4.0] * len(h) for h in histories], pa.list_(pa.float64())),
    }))


def write_generations(path: Path, id_column: str, ids: list[int], texts: list[str | None], statuses: list[str]) -> None:
    n = len(ids)
    write_parquet(path, pa.table({
        id_column: pa.array(ids, pa.int64()),
        "prompt_hash": [f"h{i}" for i in ids],
        "text": pa.array(texts, pa.string()),
        "n_prompt_tokens": [50] * n, "n_output_tokens": [20] * n,
        "finish_reason": ["stop"] * n,
        "status": statuses,
        "model": ["test-llm"] * n, "sampling_fingerprint": ["s"] * n,
    }))


def write_llm(paths: DatasetPaths, n_items: int = 12, n_users: int = 6, user_status: dict[int, str] | None = None,
              item_status: dict[int, str] | None = None) -> None:
    """LLM outputs for every id; `*_status` marks chosen ids bad (their text is then noise or empty)."""
    user_status, item_status = user_status or {}, item_status or {}
    users = list(range(1, n_users + 1))
    items = list(range(1, n_items + 1))
    write_generations(
        paths.llm / "user_preferences.parquet", "user_id", users,
        [f"The user enjoys {TASTES[u % len(TASTES)]} and dislikes {TASTES[(u + 2) % len(TASTES)]}."
         if user_status.get(u, "ok") == "ok" else "zzz zzz" for u in users],
        [user_status.get(u, "ok") for u in users],
    )
    write_generations(
        paths.llm / "item_knowledge.parquet", "item_id", items,
        [f"Item {i} is a film loved by fans of {TASTES[i % len(TASTES)]}." if item_status.get(i, "ok") == "ok" else ""
         for i in items],
        [item_status.get(i, "ok") for i in items],
    )
