"""Random negative items for pre-training that are never one of the user's own items (any split, any time)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch

MAX_ROUNDS = 100


class NegativeSampler:
    """Uniform over `1..n_items` minus everything the user ever interacted with (rejection sampling)."""

    def __init__(self, user_ids: np.ndarray, item_ids: np.ndarray, n_items: int):
        self.n_items = n_items
        self._seen = np.unique(np.asarray(user_ids, np.int64) * (n_items + 1) + np.asarray(item_ids, np.int64))

    @classmethod
    def from_interactions(cls, path: str | Path, n_items: int) -> "NegativeSampler":
        table = pq.read_table(path, columns=["user_id", "item_id"])
        return cls(table.column("user_id").to_numpy(), table.column("item_id").to_numpy(), n_items)

    def is_seen(self, user_ids: np.ndarray, item_ids: np.ndarray) -> np.ndarray:
        keys = user_ids * (self.n_items + 1) + item_ids
        pos = np.searchsorted(self._seen, keys).clip(max=len(self._seen) - 1)
        return self._seen[pos] == keys if len(self._seen) else np.zeros(keys.shape, bool)

    def sample(self, user_ids: torch.Tensor, n: int, generator: np.random.Generator) -> torch.Tensor:
        """`[B, n]` item ids, none of them an item of that row's user."""
        users = np.repeat(user_ids.numpy().astype(np.int64)[:, None], n, axis=1)
        items = generator.integers(1, self.n_items + 1, size=users.shape)
        for _ in range(MAX_ROUNDS):
            bad = self.is_seen(users, items)
            if not bad.any():
                return torch.from_numpy(items)
            items[bad] = generator.integers(1, self.n_items + 1, size=int(bad.sum()))
        user = int(users[self.is_seen(users, items)][0])
        raise ValueError(f"user {user} has interacted with (nearly) every item: no negatives to sample")
