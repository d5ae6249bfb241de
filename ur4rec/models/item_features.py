"""The item representation h_i shared by every backbone: an id embedding plus the mean of its categories.

Categories give items seen rarely in training a representation that is not pure noise; the id embedding
lets frequent items specialise. Item 0 is padding and maps to the zero vector.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

INIT_STD = 0.1


class ItemFeatures(nn.Module):
    """h_i = E_id[i] + mean_{c in cats(i)} E_cat[c]; `item_categories[i]` lists i's category ids, 0-padded."""

    def __init__(self, n_items: int, n_categories: int, item_categories: Tensor, dim: int):
        super().__init__()
        if item_categories.dim() != 2 or item_categories.shape[0] != n_items + 1:
            raise ValueError(
                f"item_categories must be [n_items + 1, max_categories] = [{n_items + 1}, K], "
                f"got {list(item_categories.shape)}"
            )
        if item_categories.numel() and int(item_categories.max()) > n_categories:
            raise ValueError(f"item_categories holds id {int(item_categories.max())} > n_categories={n_categories}")
        self.n_items = n_items
        self.ids = nn.Embedding(n_items + 1, dim, padding_idx=0)
        self.categories = nn.Embedding(n_categories + 1, dim, padding_idx=0)
        for table in (self.ids, self.categories):
            nn.init.normal_(table.weight, std=INIT_STD)
            with torch.no_grad():
                table.weight[0].zero_()
        # A buffer, not a parameter: saved in the checkpoint so a model cannot be loaded against another catalogue.
        self.register_buffer("item_categories", item_categories.long().clone())

    def forward(self, item_ids: Tensor) -> Tensor:
        """[...] item ids -> [..., dim]. Computed once per distinct id: a batch repeats items a lot (100
        candidates and 150 history items per sample), and the category mean is the costly part."""
        distinct, inverse = torch.unique(item_ids, return_inverse=True)
        return self.distinct_repr(distinct)[inverse]

    def distinct_repr(self, item_ids: Tensor) -> Tensor:
        cats = self.item_categories[item_ids]
        present = (cats > 0).unsqueeze(-1).to(self.categories.weight.dtype)
        category_mean = (self.categories(cats) * present).sum(-2) / present.sum(-2).clamp(min=1.0)
        return self.ids(item_ids) + category_mean
