"""Attention building blocks shared by PRM, SetRank and SASRec.

Written on `scaled_dot_product_attention` rather than `nn.MultiheadAttention`: no dropout on the attention
weights (on CPU, sampling a [B, heads, L, L] dropout mask cost more than the attention itself) and no
per-call mask validation, which made the stock layer several times slower at these sizes.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


class Attention(nn.Module):
    """Multi-head attention of queries `x [B, Lq, d]` over `y [B, Lk, d]`.

    `allowed` is an optional boolean mask broadcastable to `[B, heads, Lq, Lk]`, True where a query may attend
    a key (the `scaled_dot_product_attention` convention). Every query must be allowed at least one key.
    """

    def __init__(self, dim: int, heads: int):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim={dim} must be divisible by heads={heads}")
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: Tensor, y: Tensor, allowed: Tensor | None = None) -> Tensor:
        b, lq, d = x.shape
        q = self.q(x).view(b, lq, self.heads, -1).transpose(1, 2)
        k, v = self.kv(y).view(b, y.shape[1], 2, self.heads, -1).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
        return self.out(out.transpose(1, 2).reshape(b, lq, d))


class FeedForward(nn.Sequential):
    def __init__(self, dim: int, dropout: float, mult: int = 2):
        super().__init__(nn.Linear(dim, mult * dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(mult * dim, dim))


class EncoderLayer(nn.Module):
    """Pre-norm Transformer layer: x + Attn(LN x), then + FFN(LN x); dropout on both residual branches."""

    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.ffn = FeedForward(dim, dropout)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, allowed: Tensor | None = None, last_only: bool = False) -> Tensor:
        """`last_only`: compute the output of the last position only (`[B, 1, d]`), all positions as keys."""
        h = self.norm1(x)
        if last_only:
            x, queries = x[:, -1:], h[:, -1:]
            allowed = allowed[..., -1:, :] if allowed is not None else None
        else:
            queries = h
        x = x + self.dropout(self.attn(queries, h, allowed))
        return x + self.dropout(self.ffn(self.norm2(x)))


class Encoder(nn.Module):
    """A stack of `EncoderLayer`s with a final LayerNorm (stable at small widths and high learning rates)."""

    def __init__(self, dim: int, heads: int, layers: int, dropout: float):
        super().__init__()
        self.layers = nn.ModuleList(EncoderLayer(dim, heads, dropout) for _ in range(layers))
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: Tensor, allowed: Tensor | None = None, last_only: bool = False) -> Tensor:
        """`[B, L, d] -> [B, L, d]`, or `[B, 1, d]` with `last_only` (a sequence model reading its latest
        state skips the last layer's work on every other position)."""
        for index, layer in enumerate(self.layers):
            x = layer(x, allowed, last_only=last_only and index == len(self.layers) - 1)
        return self.norm(x)
