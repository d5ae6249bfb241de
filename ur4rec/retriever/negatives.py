"""Random negative items for pre-training that are never one of the user's own items (any split, any time)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch

MAX_ROUNDS = 100


class NegativeSampler:
    """Items from `1..n_items` minus everything the user ever interacted with (rejection sampling), drawn
    uniformly or in proportion to `popularity` (counts per item id; row 0 unused)."""

    def __init__(self, user_ids: np.ndarray, item_ids: np.ndarray, n_items: int, popularity: np.ndarray | None = None):
        self.n_items = n_items
        self._seen = np.unique(np.asarray(user_ids, np.int64) * (n_items + 1) + np.asarray(item_ids, np.int64))
        self._cdf = None
        if popularity is not None:
            weights = np.asarray(popularity[1 : n_items + 1], dtype=np.float64) + 1.0  # every item stays possible
            self._cdf = np.cumsum(weights) / weights.sum()

    @classmethod
    def from_interactions(cls, path: str | Path, n_items: int, popular_users: np.ndarray | None = None) -> "NegativeSampler":
        """All interactions define what a user has seen; popularity counts only `popular_users`' interactions
        (the training users, so no evaluation target shapes the training negatives)."""
        table = pq.read_table(path, columns=["user_id", "item_id"], page_checksum_verification=True)
        users, items = table.column("user_id").to_numpy(), table.column("item_id").to_numpy()
        popularity = None
        if popular_users is not None:
            keep = np.isin(users, popular_users)
            popularity = np.bincount(items[keep], minlength=n_items + 1)
        return cls(users, items, n_items, popularity)

    def _draw(self, generator: np.random.Generator, size, mode: str) -> np.ndarray:
        if mode == "uniform":
            return generator.integers(1, self.n_items + 1, size=size)
        if self._cdf is None:
            raise ValueError("popularity negatives need a sampler built with popularity counts")
        return np.searchsorted(self._cdf, generator.random(size), side="right").clip(max=self.n_items - 1) + 1

    def is_seen(self, user_ids: np.ndarray, item_ids: np.ndarray) -> np.ndarray:
        keys = user_ids * (self.n_items + 1) + item_ids
        pos = np.searchsorted(self._seen, keys).clip(max=len(self._seen) - 1)
        return self._seen[pos] == keys if len(self._seen) else np.zeros(keys.shape, bool)

    def sample(self, user_ids: torch.Tensor, n: int, generator: np.random.Generator, mode: str = "uniform") -> torch.Tensor:
        """`[B, n]` item ids, none of them an item of that row's user."""
        users = np.repeat(user_ids.numpy().astype(np.int64)[:, None], n, axis=1)
        items = self._draw(generator, users.shape, mode)
        for _ in range(MAX_ROUNDS):
            bad = self.is_seen(users, items)
            if not bad.any():
                return torch.from_numpy(items)
            items[bad] = self._draw(generator, int(bad.sum()), mode)
        user = int(users[self.is_seen(users, items)][0])
        raise ValueError(f"user {user} has interacted with (nearly) every item: no negatives to sample")
