"""The item catalogue as a backbone sees it: sizes, category ids and (for text-based models) item texts.

Built by the caller from the prepared items table; models never read files.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor


@dataclass(frozen=True)
class ItemCatalog:
    n_items: int
    n_categories: int
    item_categories: Tensor  # [n_items + 1, K] category ids per item, 0-padded; row 0 is padding
    texts: tuple[str, ...] | None = None  # "key value" text of item i at index i (index 0: ""), when asked for
    item_counts: Tensor | None = None     # [n_items + 1] interactions per item among training users, when asked for
