"""Read the item catalogue a backbone is built over from the prepared `items.parquet`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch

from ur4rec.data.schema import DataFormatError
from ur4rec.models.catalog import ItemCatalog
from ur4rec.train.padding import pad_lists


def read_catalog(path: str | Path, with_texts: bool = False) -> ItemCatalog:
    """`items.parquet` (`item_id`, `category_ids`[, `title`, `categories`, `attributes`]) as an ItemCatalog.

    Ids must be dense `1..n_items`. `with_texts` adds each item's "key value" text (title, categories and
    attributes), for backbones that encode item texts themselves.
    """
    path = Path(path)
    columns = ["item_id", "category_ids"] + (["title", "categories", "attributes"] if with_texts else [])
    table = pq.read_table(path, columns=columns, page_checksum_verification=True)
    ids = table.column("item_id").to_numpy()
    n_items = len(ids)
    if n_items == 0:
        raise DataFormatError(f"{path}: no items; rerun the prepare stage")
    expected = np.arange(1, n_items + 1)
    order = np.argsort(ids, kind="stable")
    if not np.array_equal(ids[order], expected):
        bad = next(int(i) for i, e in zip(ids[order], expected) if i != e)
        raise DataFormatError(f"{path}: item ids must be dense 1..{n_items}; item_id {bad} is out of place; rerun prepare")
    cats = table.column("category_ids").combine_chunks().take(order)
    width = max(1, int(pc.max(pc.list_value_length(cats)).as_py() or 0))
    try:
        rows = pad_lists(cats, width, side="right")
    except ValueError as exc:
        raise DataFormatError(f"{path}: category_ids: {exc}; rerun prepare") from exc
    if (rows < 0).any():
        raise DataFormatError(f"{path}: negative category id; rerun prepare")
    item_categories = np.zeros((n_items + 1, width), dtype=np.int64)
    item_categories[1:] = rows
    texts = None
    if with_texts:
        rows_ = table.take(order).select(["title", "categories", "attributes"]).to_pylist()
        texts = ("",) + tuple(item_key_value_text(r["title"], r["categories"], r["attributes"]) for r in rows_)
    return ItemCatalog(n_items, int(item_categories.max()), torch.from_numpy(item_categories), texts)


def item_key_value_text(title: str | None, categories: list[str] | None, attributes: str | None) -> str:
    """Recformer's item text: attribute names and values flattened, `title X genres A, B year 1995`."""
    import json

    parts = [f"title {title}"] if title else []
    if categories:
        parts.append("categories " + ", ".join(categories))
    try:
        extra = json.loads(attributes) if attributes else {}
    except json.JSONDecodeError:
        extra = {}
    for key, value in sorted(extra.items()):
        if value not in (None, "", []) and key != "title_from":
            parts.append(f"{key.replace('_', ' ')} {', '.join(map(str, value)) if isinstance(value, list) else value}")
    return " ".join(parts)
