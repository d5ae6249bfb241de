"""What the list-wise rerankers (DLCM, PRM, SetRank) read per candidate: its representation, and the user only
when `user_history` is on.

The paper's finding (5) says these three models "do not" capture user interests from the history, and KAR's
reference rerankers score a list from the candidate embeddings plus the augmentation vector, so user
information enters only through the augmentation. That history-blind setting is the default here. With
`user_history: true` each candidate also sees u, the mean of the history representations, as
[h_c ; u ; h_c * u] (the product lets a linear input layer express candidate-user affinity directly).
"""

from __future__ import annotations


import torch
from torch import Tensor

from ur4rec.models.base import Backbone
from ur4rec.models.config import RerankerConfig



def input_width(cfg: RerankerConfig) -> int:
    return 3 * cfg.dim if cfg.user_history else cfg.dim


def candidate_inputs(model: Backbone, candidates: Tensor, history: Tensor) -> Tensor:
    """`[B, C, dim]` candidate representations -> the reranker's per-candidate input."""
    if not model.cfg.user_history:
        return candidates
    user = model.history_summary(history).unsqueeze(1).expand_as(candidates)
    return torch.cat([candidates, user, candidates * user], dim=-1)
