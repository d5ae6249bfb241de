"""DLCM (Ai et al., SIGIR 2018): a GRU reads the candidate list and a local context model scores each item.

The GRU runs over the candidates in the order given (the base ranking order; here the frozen candidate order
of the prepared samples). Its final state s is the local context of the whole list; each candidate's output o_j
is scored by the paper's local ranking function phi(o_j, s) = v . (o_j * tanh(W s + b)). The input of step j is
the candidate's representation concatenated with the user's history summary.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ur4rec.models import register
from ur4rec.models.base import Backbone, BackboneConfig
from ur4rec.models.catalog import ItemCatalog


@dataclass
class DLCMConfig(BackboneConfig):
    layers: int = 1


@register("dlcm")
class DLCM(Backbone):
    Config = DLCMConfig

    def __init__(self, cfg: DLCMConfig, catalog: ItemCatalog, aug_dim: int = 0):
        super().__init__(cfg, catalog, aug_dim)
        d = cfg.dim
        self.inputs = nn.Sequential(nn.Linear(3 * d, d), nn.ELU())
        self.gru = nn.GRU(d, d, num_layers=cfg.layers, batch_first=True, dropout=cfg.dropout if cfg.layers > 1 else 0.0)
        self.context = nn.Linear(d, d)
        self.v = nn.Linear(d, 1, bias=False)

    def score(self, history: Tensor, candidates: Tensor) -> Tensor:
        x = self.dropout(self.inputs(self.with_user(candidates, history)))
        outputs, final = self.gru(x)                      # [B, C, d], [layers, B, d]
        context = torch.tanh(self.context(final[-1])).unsqueeze(1)
        return self.v(outputs * context).squeeze(-1)
