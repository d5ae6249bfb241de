"""DLCM (Ai et al., SIGIR 2018): a GRU reads the candidate list and a local context model scores each item.

The GRU runs over the candidates in the order given (the base ranking order; here the frozen candidate order
of the prepared samples). Its final state s is the local context of the whole list; each candidate's output o_j
is scored by the paper's local ranking function phi(o_j, s) = v . (o_j * tanh(W s + b)). The input of step j is
the candidate's representation (and the user's history summary with `user_history`; see `reranker.py`).
"""

from __future__ import annotations


import torch
from torch import Tensor, nn

from ur4rec.models.base import Backbone
from ur4rec.models.config import DLCMConfig
from ur4rec.models.reranker import candidate_inputs, input_width
from ur4rec.models.catalog import ItemCatalog



class DLCM(Backbone):

    def __init__(self, cfg: DLCMConfig, catalog: ItemCatalog, aug_dim: int = 0):
        super().__init__(cfg, catalog, aug_dim)
        d = cfg.dim
        self.inputs = nn.Sequential(nn.Linear(input_width(cfg), d), nn.ELU())
        self.gru = nn.GRU(d, d, num_layers=cfg.layers, batch_first=True, dropout=cfg.dropout if cfg.layers > 1 else 0.0)
        self.context = nn.Linear(d, d)
        self.v = nn.Linear(d, 1, bias=False)

    def score(self, history: Tensor, candidates: Tensor) -> Tensor:
        x = self.dropout(self.inputs(candidate_inputs(self, candidates, history)))
        outputs, final = self.gru(x)                      # [B, C, d], [layers, B, d]
        context = torch.tanh(self.context(final[-1])).unsqueeze(1)
        return self.v(outputs * context).squeeze(-1)
