"""How an augmentation vector enters a candidate's representation: `fusion(h [..., d], aug [..., A]) -> [..., d]`.

Two fusions, chosen by name (`retriever.joint.fusion`), both started as the identity on h so an arm starts
exactly as its Base:

- `identity_linear`: c = W[h ; aug] + h ⊙ (V aug), with biases, W's h part the identity at the start. W's h
  part and both biases train whatever the aug, so even the control (aug = 0) moves away from Base through
  them, and a step of V on the component every aug vector shares rescales every candidate at once.
- `gated`: c = h ⊙ (1 + tanh(V aug)) + tanh(g) ⊙ (U aug), no bias anywhere, V and g zero at the start. With
  aug = 0 it is h exactly, and stays so (V, g and U get no gradient from a zero aug), so the control is its
  Base backbone fine-tuned; tanh bounds the rescaling of h to (0, 2). The scaling term is what lets a vector
  that is the same for every candidate (+BERT, +LLM) reorder a dot-product ranking; the gated additive term
  carries a per-candidate aug's own content (UR4Rec, KAR).
- `gated_l1`: `gated` on the aug scaled to unit L1 norm per candidate (a zero aug stays zero). Adam moves
  each weight of V by about the rate per step, so a step moves V·aug by up to rate × ||aug||_1: at one rate,
  an arm's fusion steps in proportion to its aug's width and scale (UR4Rec's 768 LayerNormed values about 20
  times KAR's 128 adaptor outputs; z-scored encoder vectors more still). On unit-L1 input one rate is one
  step size for every arm, at the price of the aug's own length.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

FUSIONS = ("identity_linear", "gated", "gated_l1")


class IdentityLinearFusion(nn.Module):
    """c = W[h ; aug] + h ⊙ (V aug): the fusion the first runs measured."""

    def __init__(self, dim: int, aug_dim: int):
        super().__init__()
        self.dim = dim
        self.proj = nn.Linear(dim + aug_dim, dim)
        self.scale = nn.Linear(aug_dim, dim)

    def forward(self, h: Tensor, aug: Tensor) -> Tensor:
        return self.proj(torch.cat([h, aug], dim=-1)) + h * self.scale(aug)

    @torch.no_grad()
    def as_identity(self) -> None:
        self.proj.weight.zero_()
        self.proj.weight[:, : self.dim].copy_(torch.eye(self.dim))
        self.proj.bias.zero_()
        self.scale.weight.zero_()
        self.scale.bias.zero_()


class GatedFusion(nn.Module):
    """c = h ⊙ (1 + tanh(V aug)) + tanh(g) ⊙ (U aug): bounded, bias-free, the identity at the start."""

    def __init__(self, dim: int, aug_dim: int):
        super().__init__()
        self.scale = nn.Linear(aug_dim, dim, bias=False)  # V
        self.proj = nn.Linear(aug_dim, dim, bias=False)  # U: random, so the gate's gradient is not zero
        self.gate = nn.Parameter(torch.zeros(dim))  # g
        self.as_identity()

    def forward(self, h: Tensor, aug: Tensor) -> Tensor:
        return h * (1 + torch.tanh(self.scale(aug))) + torch.tanh(self.gate) * self.proj(aug)

    @torch.no_grad()
    def as_identity(self) -> None:
        self.scale.weight.zero_()
        self.gate.zero_()


class UnitL1GatedFusion(GatedFusion):
    """`GatedFusion` on aug / ||aug||_1: the same bound on a step's effect for every aug width and scale."""

    def forward(self, h: Tensor, aug: Tensor) -> Tensor:
        # clamp, not an epsilon in the sum: a zero aug (the control) divides by the clamp and stays exactly zero
        return super().forward(h, aug / aug.abs().sum(-1, keepdim=True).clamp_min(1e-12))


def make_fusion(kind: str, dim: int, aug_dim: int) -> nn.Module:
    if kind == "identity_linear":
        return IdentityLinearFusion(dim, aug_dim)
    if kind == "gated":
        return GatedFusion(dim, aug_dim)
    if kind == "gated_l1":
        return UnitL1GatedFusion(dim, aug_dim)
    raise ValueError(f"unknown fusion {kind!r}; known: {list(FUSIONS)}")
