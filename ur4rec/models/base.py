"""The interface every backbone implements, so the training loop and the augmented variants see one shape.

A backbone scores a batch of candidate lists: `forward(batch, aug=None) -> scores [B, C]`, higher is better.
`aug` (`[B, C, aug_dim]`, only when the model was built with `aug_dim > 0`) is fused into each candidate's
item representation at the model width `dim` (`ur4rec.models.fusion`; `use_fusion` picks which), the way the
paper injects the augmented vectors. `item_repr(item_ids) -> [..., dim]` exposes the trained item representation h_i for the
retriever's pre-training.

Models see tensors only; the batch is `ur4rec.train.batch.RerankBatch` (anything with `history [B, L]`
left-padded with 0 and `candidates [B, C]` works).
"""

from __future__ import annotations

from typing import ClassVar, Protocol

from torch import Tensor, nn

from ur4rec.models.catalog import ItemCatalog
from ur4rec.models.config import BackboneConfig
from ur4rec.models.item_bias import item_bias
from ur4rec.models.fusion import make_fusion
from ur4rec.models.item_features import ItemFeatures


class BatchLike(Protocol):
    history: Tensor
    candidates: Tensor


class Backbone(nn.Module):
    """Base class: item features, the optional augmentation projection, and history helpers."""

    name: ClassVar[str] = ""

    def __init__(self, cfg: BackboneConfig, catalog: ItemCatalog, aug_dim: int = 0):
        super().__init__()
        if aug_dim < 0:
            raise ValueError(f"aug_dim must be >= 0, got {aug_dim}")
        self.cfg = cfg
        self.dim = cfg.dim
        self.aug_dim = aug_dim
        self.history_len = cfg.history_len
        self.items = ItemFeatures(catalog.n_items, catalog.n_categories, catalog.item_categories, cfg.dim)
        # Fusion of eq. 9 (ur4rec.models.fusion): an aug-driven scaling of h_i's dimensions is what lets a
        # user-level aug (the same for every candidate) change a dot-product ranking: a linear part alone adds
        # s_u . W a_u, a constant per user, which the softmax over candidates ignores.
        self.fusion_kind = "identity_linear"
        self.fusion = make_fusion(self.fusion_kind, cfg.dim, aug_dim) if aug_dim > 0 else None
        self.dropout = nn.Dropout(cfg.dropout)
        self.item_bias = item_bias(cfg.item_bias, catalog)

    # ---------------------------------------------------------------- the interface

    def forward(self, batch: BatchLike, aug: Tensor | None = None) -> Tensor:
        """Scores `[B, C]` for `batch.candidates`; `aug` is `[B, C, aug_dim]` when built with `aug_dim > 0`."""
        candidates = self.candidate_repr(batch.candidates, aug)
        scores = self.score(self.recent(batch.history), candidates)
        return scores if self.item_bias is None else scores + self.item_bias(batch.candidates)

    def item_repr(self, item_ids: Tensor) -> Tensor:
        """h_i for any shape of item ids: `[...] -> [..., dim]` (0 -> zeros)."""
        return self.items(item_ids)

    def score(self, history: Tensor, candidates: Tensor) -> Tensor:
        """`history [B, L]` item ids (left-padded), `candidates [B, C, dim]` -> scores `[B, C]`."""
        raise NotImplementedError

    # ---------------------------------------------------------------- helpers for subclasses

    def candidate_repr(self, candidates: Tensor, aug: Tensor | None) -> Tensor:
        """Candidate embeddings `[B, C, dim]`, with the augmented vector fused in when the model takes one."""
        h = self.item_repr(candidates)
        if self.fusion is None:
            if aug is not None:
                raise ValueError(f"{self.name}: got an aug tensor but the model was built with aug_dim=0")
            return h
        expected = (*candidates.shape, self.aug_dim)
        if aug is None or tuple(aug.shape) != expected:
            got = None if aug is None else list(aug.shape)
            raise ValueError(f"{self.name}: aug must have shape {list(expected)} [B, C, aug_dim], got {got}")
        return self.fusion(h, aug.to(h.dtype))

    def use_fusion(self, kind: str) -> None:
        """Fuse the aug with the fusion `kind` (`ur4rec.models.fusion.FUSIONS`); the built one when it is that."""
        if self.fusion is not None and kind != self.fusion_kind:
            self.fusion = make_fusion(kind, self.dim, self.aug_dim)
        self.fusion_kind = kind

    def fusion_parameters(self) -> list[nn.Parameter]:
        """The aug fusion's weights (none without aug): the part of an augmented backbone Base never had."""
        return [] if self.fusion is None else list(self.fusion.parameters())

    def fuse_as_identity(self) -> None:
        """Make the fusion return h_i whatever the aug, so the model scores exactly as its Base counterpart."""
        if self.fusion is not None:
            self.fusion.as_identity()

    def recent(self, history: Tensor) -> Tensor:
        """The model's own tail of a left-padded history (the data may carry a longer one)."""
        return history[:, -self.history_len:]

    def history_summary(self, history: Tensor) -> Tensor:
        """Mean of the (non-padding) history item representations, `[B, dim]`. Users are split 8:1:1, so a
        user-id embedding would never be trained for a test user; the history is what we know."""
        present = (history > 0).unsqueeze(-1).to(self.items.ids.weight.dtype)
        return (self.item_repr(history) * present).sum(1) / present.sum(1).clamp(min=1.0)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, history_len={self.history_len}, aug_dim={self.aug_dim}"

