"""GRU4Rec (Hidasi et al., ICLR 2016): a GRU over the user's history gives the user state; a candidate's score
is the dot product of that state with the candidate's representation.

The history arrives left-padded; it is right-aligned and packed so the GRU reads only real items and the
state is the one after the most recent item. Trained with the listwise loss over the candidate list (the
reranking setting of the paper), not session-parallel next-item prediction.
"""

from __future__ import annotations


import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence

from ur4rec.models.base import Backbone
from ur4rec.models.config import GRU4RecConfig
from ur4rec.models.catalog import ItemCatalog



def right_align(x: Tensor, lengths: Tensor) -> Tensor:
    """Move each row's last `lengths[b]` steps of a left-padded `[B, L, ...]` tensor to the front."""
    steps = x.shape[1]
    idx = (torch.arange(steps, device=x.device).unsqueeze(0) + (steps - lengths).unsqueeze(1)) % steps
    idx = idx.view(*idx.shape, *([1] * (x.dim() - 2))).expand_as(x)
    return x.gather(1, idx)


class GRU4Rec(Backbone):

    def __init__(self, cfg: GRU4RecConfig, catalog: ItemCatalog, aug_dim: int = 0):
        super().__init__(cfg, catalog, aug_dim)
        d = cfg.dim
        self.gru = nn.GRU(d, d, num_layers=cfg.layers, batch_first=True, dropout=cfg.dropout if cfg.layers > 1 else 0.0)
        self.out = nn.Linear(d, d)

    def user_state(self, history: Tensor) -> Tensor:
        """`[B, L]` left-padded item ids -> `[B, dim]` (an empty history reads one padding step)."""
        lengths = (history > 0).sum(1)
        x = self.dropout(self.item_repr(right_align(history, lengths)))
        packed = pack_padded_sequence(x, lengths.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False)
        _, final = self.gru(packed)
        return self.out(final[-1])

    def score(self, history: Tensor, candidates: Tensor) -> Tensor:
        return (candidates * self.user_state(history).unsqueeze(1)).sum(-1)
