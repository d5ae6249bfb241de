"""PRM (Pei et al., RecSys 2019): a Transformer encoder over the candidate list.

Each candidate's input is its representation (with `user_history`, also a personalised vector: the mean of
the user's history representations, standing in for PRM's pre-trained user vector; see `reranker.py`),
projected to width d, plus a learnable embedding of its position in the list. A small MLP turns each encoded
candidate into a score.
"""

from __future__ import annotations


import torch
from torch import Tensor, nn

from ur4rec.models.base import Backbone
from ur4rec.models.config import PRMConfig
from ur4rec.models.reranker import candidate_inputs, input_width
from ur4rec.models.catalog import ItemCatalog
from ur4rec.models.layers import Encoder



class PRM(Backbone):

    def __init__(self, cfg: PRMConfig, catalog: ItemCatalog, aug_dim: int = 0):
        super().__init__(cfg, catalog, aug_dim)
        d = cfg.dim
        self.max_candidates = cfg.max_candidates
        self.inputs = nn.Linear(input_width(cfg), d)
        self.position = nn.Embedding(cfg.max_candidates, d)
        nn.init.normal_(self.position.weight, std=0.02)
        self.encoder = Encoder(d, cfg.heads, cfg.layers, cfg.dropout)
        self.head = nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, 1))

    def score(self, history: Tensor, candidates: Tensor) -> Tensor:
        n = candidates.shape[1]
        if n > self.max_candidates:
            raise ValueError(f"prm: {n} candidates per list > backbone.prm.max_candidates={self.max_candidates}")
        positions = self.position(torch.arange(n, device=candidates.device)).unsqueeze(0)
        x = self.dropout(self.inputs(candidate_inputs(self, candidates, history)) + positions)
        return self.head(self.encoder(x)).squeeze(-1)
