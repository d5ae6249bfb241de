"""Building blocks shared by more than one backbone."""

from __future__ import annotations

from torch import nn


def transformer_encoder(dim: int, heads: int, layers: int, dropout: float, ff_mult: int = 2) -> nn.TransformerEncoder:
    """A pre-norm Transformer encoder stack with a final LayerNorm (stable at small widths and high lr)."""
    if dim % heads:
        raise ValueError(f"dim={dim} must be divisible by heads={heads}")
    layer = nn.TransformerEncoderLayer(
        dim, heads, dim_feedforward=ff_mult * dim, dropout=dropout, batch_first=True, norm_first=True
    )
    return nn.TransformerEncoder(layer, layers, norm=nn.LayerNorm(dim), enable_nested_tensor=False)
