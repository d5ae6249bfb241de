"""SetRank (Pang et al., SIGIR 2020): permutation-equivariant self-attention over the candidate set.

Stacked induced multi-head self-attention blocks (IMSAB: the list attends to m learnable inducing points and
back, Set-Transformer style), or plain MSAB when `inducing_points` is 0. There is NO positional encoding, so
permuting the candidates permutes the scores and nothing else. Each candidate's input is its representation
(with `user_history`, also the user's history summary, the same for every candidate, which keeps the
equivariance; see `reranker.py`).
"""

from __future__ import annotations


import torch
from torch import Tensor, nn

from ur4rec.models.base import Backbone
from ur4rec.models.config import SetRankConfig
from ur4rec.models.reranker import candidate_inputs, input_width
from ur4rec.models.catalog import ItemCatalog
from ur4rec.models.layers import Attention, FeedForward



class MAB(nn.Module):
    """Multi-head attention block (SetRank eq. 4-5): H = LN(X + Attn(X, Y, Y)); out = LN(H + FFN(H))."""

    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.attn = Attention(dim, heads)
        self.ffn = FeedForward(dim, dropout)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        h = self.norm1(x + self.dropout(self.attn(x, y)))
        return self.norm2(h + self.dropout(self.ffn(h)))


class SetBlock(nn.Module):
    """IMSAB(X) = MAB(X, MAB(I, X)) with learnable inducing points I, or MSAB(X) = MAB(X, X)."""

    def __init__(self, dim: int, heads: int, dropout: float, inducing_points: int):
        super().__init__()
        self.inducing = nn.Parameter(torch.randn(inducing_points, dim) * 0.02) if inducing_points else None
        self.summarise = MAB(dim, heads, dropout) if inducing_points else None
        self.attend = MAB(dim, heads, dropout)

    def forward(self, x: Tensor) -> Tensor:
        if self.inducing is None or self.summarise is None:
            return self.attend(x, x)
        points = self.summarise(self.inducing.unsqueeze(0).expand(x.shape[0], -1, -1), x)
        return self.attend(x, points)


class SetRank(Backbone):

    def __init__(self, cfg: SetRankConfig, catalog: ItemCatalog, aug_dim: int = 0):
        super().__init__(cfg, catalog, aug_dim)
        d = cfg.dim
        self.inputs = nn.Linear(input_width(cfg), d)
        self.blocks = nn.ModuleList(SetBlock(d, cfg.heads, cfg.dropout, cfg.inducing_points) for _ in range(cfg.layers))
        self.head = nn.Linear(d, 1)

    def score(self, history: Tensor, candidates: Tensor) -> Tensor:
        x = self.dropout(self.inputs(candidate_inputs(self, candidates, history)))
        for block in self.blocks:
            x = block(x)
        return self.head(x).squeeze(-1)
