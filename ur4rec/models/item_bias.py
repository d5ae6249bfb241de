"""An optional per-item score offset added to every backbone's scores (`backbone.<name>.item_bias`).

A history-blind reranker (DLCM, PRM, SetRank by default) can only learn which items tend to be targets, and
from the training lists alone it sees a few thousand targets: on ml-100k it stayed below TopPop, which ranks by
the ~80k interactions of the training users. The offset gives it that count directly:

- `none`: no offset (the paper's models).
- `learned`: b_i, one trained scalar per item (zero at the start).
- `popularity`: w · log(1 + n_i), n_i = interactions of item i among TRAINING users (`ItemCatalog.item_counts`,
  counted by the caller; no valid or test user's interaction), w one trained scalar starting at 1, so an
  untrained model already ranks as TopPop and training learns what to add to it.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ur4rec.models.catalog import ItemCatalog
from ur4rec.models.config import ITEM_BIAS


class ItemBias(nn.Module):
    def __init__(self, kind: str, catalog: ItemCatalog):
        super().__init__()
        if kind not in ITEM_BIAS:
            raise ValueError(f"item_bias must be one of {ITEM_BIAS}, got {kind!r}")
        self.kind = kind
        if kind == "learned":
            # Zeros drawn from no random stream: the backbone's other weights stay those of `none` at a seed.
            self.bias = nn.Parameter(torch.zeros(catalog.n_items + 1))
        else:
            counts = catalog.item_counts
            if counts is None or tuple(counts.shape) != (catalog.n_items + 1,):
                got = None if counts is None else list(counts.shape)
                raise ValueError(f"item_bias: popularity needs the catalogue's item_counts [n_items + 1], got {got}")
            self.weight = nn.Parameter(torch.ones(()))
            # A buffer, saved with the weights: a checkpoint keeps the counts it was trained with.
            self.register_buffer("log_counts", torch.log1p(counts.double()).float())

    def forward(self, item_ids: Tensor) -> Tensor:
        """`[...]` item ids -> `[...]` score offsets."""
        if self.kind == "learned":
            return self.bias[item_ids] * (item_ids > 0)  # padding (0) stays without offset
        return self.weight * self.log_counts[item_ids]

    def extra_repr(self) -> str:
        return self.kind


def item_bias(kind: str, catalog: ItemCatalog) -> ItemBias | None:
    return None if kind == "none" else ItemBias(kind, catalog)
