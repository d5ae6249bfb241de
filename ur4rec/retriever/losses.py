"""Pre-training objectives (paper §3.2): InfoNCE with max-over-proxies similarity, and PIM BCE.

Pure functions of tensors. Two readings of the paper, on purpose:
- The paper's InfoNCE prints only negatives in the denominator; that is unbounded below, so the standard form
  (positive included, as in the works it cites) is used: cross-entropy of [pos, neg_1..neg_M] with target 0.
- Sums over samples become means, so the loss scale does not depend on the batch size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

OBJECTIVES = ("cl", "pim")


def max_proxy_cosine(pref: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
    """sim(e^pref, e_i): cosine of each of the K proxy outputs with each item, max over K.

    `pref [B, K, W]`, `items [B, n, W]` → `[B, n]`.
    """
    cos = torch.einsum("bkw,bnw->bkn", F.normalize(pref, dim=-1), F.normalize(items, dim=-1))
    return cos.max(dim=1).values


def info_nce_logits(pref: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor, tau: float,
                    batch_items: torch.Tensor | None = None, batch_allowed: torch.Tensor | None = None) -> torch.Tensor:
    """`[B, 1 + M (+ B)]` logits: the positive first, its M negatives, then (in-batch negatives) every item of
    `batch_items [B, W]` that `batch_allowed [B, B]` lets row b use, the others at -inf."""
    logits = max_proxy_cosine(pref, torch.cat([pos.unsqueeze(1), neg], dim=1)) / tau
    if batch_items is None:
        return logits
    shared = max_proxy_cosine(pref, batch_items.unsqueeze(0).expand(pref.shape[0], -1, -1)) / tau
    return torch.cat([logits, shared.masked_fill(~batch_allowed, float("-inf"))], dim=1)


def info_nce(pref: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor, tau: float) -> torch.Tensor:
    """L_CL for `pref [B, K, W]`, `pos [B, W]`, `neg [B, M, W]`: mean over B of -log softmax(pos)."""
    logits = info_nce_logits(pref, pos, neg, tau)
    target = torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device)
    return F.cross_entropy(logits, target)


def pim_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """L_PIM: binary cross-entropy of match logits against 1 (positive) / 0 (negative), mean."""
    return F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))


def pretrain_loss(l_cl: torch.Tensor | None, l_pim: torch.Tensor | None, alpha: float) -> torch.Tensor:
    """L_CL + α·L_PIM, where an objective switched off by an ablation is passed as None."""
    terms = [t for t in (l_cl, None if l_pim is None else alpha * l_pim) if t is not None]
    if not terms:
        raise ValueError("pretrain_loss needs at least one objective (cl or pim)")
    return torch.stack(terms).sum()
