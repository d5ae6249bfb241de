"""SASRec (Kang & McAuley, ICDM 2018): causal self-attention over the history with learnable positional
embeddings; the state at the most recent position, dotted with a candidate's representation, is its score.

Positions are counted from the end, so the most recent item always has the same position whatever the
history length. Padding is masked as a key; every position may attend to itself, so a padding query never
sees an all-masked row (which would give NaN and leak through later layers). Trained with the listwise loss
over the candidate list, as every backbone here.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ur4rec.models.base import Backbone
from ur4rec.models.config import SASRecConfig
from ur4rec.models.catalog import ItemCatalog
from ur4rec.models.layers import Encoder



def allowed_attention(history: Tensor) -> Tensor:
    """Boolean `[B, 1, L, L]` mask, True where query q may attend key k: past or present real items, and q
    itself (so a padding query has one key)."""
    steps = history.shape[1]
    past = torch.ones(steps, steps, dtype=torch.bool, device=history.device).tril()
    allowed = past.unsqueeze(0) & (history > 0).unsqueeze(1)
    allowed |= torch.eye(steps, dtype=torch.bool, device=history.device)
    return allowed.unsqueeze(1)


class SASRec(Backbone):

    def __init__(self, cfg: SASRecConfig, catalog: ItemCatalog, aug_dim: int = 0):
        super().__init__(cfg, catalog, aug_dim)
        self.position = nn.Embedding(cfg.history_len, cfg.dim)
        nn.init.normal_(self.position.weight, std=0.02)
        self.encoder = Encoder(cfg.dim, cfg.heads, cfg.layers, cfg.dropout)

    def user_state(self, history: Tensor) -> Tensor:
        """`[B, L]` left-padded item ids -> `[B, dim]`, the encoder output at the most recent position."""
        steps = history.shape[1]
        positions = torch.arange(self.history_len - steps, self.history_len, device=history.device)
        present = (history > 0).unsqueeze(-1).to(self.position.weight.dtype)
        x = self.item_repr(history) * math.sqrt(self.dim) + self.position(positions).unsqueeze(0)
        x = self.dropout(x) * present
        return self.encoder(x, allowed_attention(history), last_only=True)[:, -1]

    def score(self, history: Tensor, candidates: Tensor) -> Tensor:
        return (candidates * self.user_state(history).unsqueeze(1)).sum(-1)
