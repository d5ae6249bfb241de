"""The item catalogue as tensors: what a backbone needs to build its item features."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch
from torch import Tensor

from ur4rec.train.padding import pad_lists


@dataclass
class ItemCatalog:
    n_items: int
    n_categories: int
    item_categories: Tensor   # [n_items + 1, K] category ids per item, 0-padded; row 0 is padding

    @classmethod
    def from_parquet(cls, path: str | Path) -> "ItemCatalog":
        """Read `items.parquet` (`item_id`, `category_ids`); ids must be dense `1..n_items`."""
        path = Path(path)
        table = pq.read_table(path, columns=["item_id", "category_ids"])
        ids = table.column("item_id").to_numpy()
        n_items = len(ids)
        if n_items == 0:
            raise ValueError(f"{path}: no items")
        expected = np.arange(1, n_items + 1)
        order = np.argsort(ids, kind="stable")
        if not np.array_equal(ids[order], expected):
            bad = next(int(i) for i, e in zip(ids[order], expected) if i != e)
            raise ValueError(f"{path}: item ids must be dense 1..{n_items}; found item_id {bad} out of place")
        cats = table.column("category_ids").combine_chunks().take(order)
        width = max(1, int(pc.max(pc.list_value_length(cats)).as_py() or 0))
        try:
            rows = pad_lists(cats, width, side="right")
        except ValueError as exc:
            raise ValueError(f"{path}: category_ids: {exc}") from exc
        if (rows < 0).any():
            raise ValueError(f"{path}: negative category id")
        item_categories = np.zeros((n_items + 1, width), dtype=np.int64)
        item_categories[1:] = rows
        return cls(n_items, int(item_categories.max()), torch.from_numpy(item_categories))
