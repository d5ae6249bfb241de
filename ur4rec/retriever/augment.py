"""Augmenters: a batch → `aug [B, C, A]`, fused by the backbone into each candidate's embedding.

Found by `kind` in a registry (`AUGMENTERS`), as the backbones are: `none` (the matched control: zeros of the
encoder's width, so its model has the same fusion layer, parameter groups and training as +BERT/+LLM and
differs only in what the augmentation carries), `bert`, `llm`, `kar`, `pooled`, `ur4rec`.

The embedding tables are non-persistent buffers built from the `EmbeddingStore` (row = id, row 0 zeros), so
models never touch files and checkpoints hold only trained weights. `AugmentedRecommender` pairs a backbone
with an augmenter and has the backbone's interface (`forward(batch) -> scores [B, C]`), so the shared training
loop trains it like any backbone — retriever and backbone together, on the backbone's loss (eq. 9).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable, Protocol

import torch
from torch import Tensor, nn

from ur4rec.precision import native_bf16
from ur4rec.retriever.keys import preference_keys
from ur4rec.retriever.model import Retriever, recording_cross_attention
from ur4rec.retriever.variants import KarConfig, VariantConfig

ItemRepr = Callable[[Tensor], Tensor]


class BatchLike(Protocol):
    user_ids: Tensor
    history: Tensor
    candidates: Tensor


class Augmenter(nn.Module):
    """Base: holds the user and item vector tables; subclasses say how they become `aug`."""

    out_dim: int

    def __init__(self, user_table: Tensor, item_table: Tensor | None = None):
        super().__init__()
        self.register_buffer("user_table", user_table.float(), persistent=False)
        self.register_buffer("item_table", None if item_table is None else item_table.float(), persistent=False)

    def forward(self, batch: BatchLike, item_repr: ItemRepr | None = None) -> Tensor:
        raise NotImplementedError


class ZeroAugmenter(Augmenter):
    """The control: an augmentation input of the usual width that carries nothing."""

    def __init__(self, dim: int):
        super().__init__(torch.zeros(1, dim))
        self.out_dim = dim

    def forward(self, batch: BatchLike, item_repr: ItemRepr | None = None) -> Tensor:
        return self.user_table.new_zeros(*batch.candidates.shape, self.out_dim)


class BroadcastAugmenter(Augmenter):
    """+BERT / +LLM: one user vector, the same for every candidate."""

    def __init__(self, user_table: Tensor):
        super().__init__(user_table)
        self.out_dim = user_table.shape[1]

    def forward(self, batch: BatchLike, item_repr: ItemRepr | None = None) -> Tensor:
        vec = self.user_table[batch.user_ids]
        return vec.unsqueeze(1).expand(-1, batch.candidates.shape[1], -1)


class PooledAugmenter(Augmenter):
    """w/o Retr: Z of eq. 5 used directly, pooled to a fixed width: [e_u ; mean of history e_i], broadcast."""

    def __init__(self, user_table: Tensor, item_table: Tensor, z_history: int):
        super().__init__(user_table, item_table)
        self.z_history = z_history
        self.out_dim = 2 * user_table.shape[1]

    def forward(self, batch: BatchLike, item_repr: ItemRepr | None = None) -> Tensor:
        z, mask = preference_keys(self.user_table, self.item_table, batch.user_ids, batch.history, self.z_history)
        weights = mask[:, 1:].unsqueeze(-1).to(z.dtype)
        hist_mean = (z[:, 1:] * weights).sum(1) / weights.sum(1).clamp(min=1.0)
        vec = torch.cat([z[:, 0], hist_mean], dim=-1)
        return vec.unsqueeze(1).expand(-1, batch.candidates.shape[1], -1)


class HybridExpertAdaptor(nn.Module):
    """KAR's adaptor: per knowledge type, a softmax gate mixes the shared experts and that type's own experts."""

    def __init__(self, in_dim: int, cfg: KarConfig, n_types: int = 2):
        super().__init__()
        self.shared = nn.ModuleList(_expert(in_dim, cfg) for _ in range(cfg.n_shared))
        self.dedicated = nn.ModuleList(
            nn.ModuleList(_expert(in_dim, cfg) for _ in range(cfg.n_dedicated)) for _ in range(n_types)
        )
        self.gates = nn.ModuleList(nn.Linear(in_dim, cfg.n_shared + cfg.n_dedicated) for _ in range(n_types))

    def forward(self, x: Tensor, knowledge_type: int) -> Tensor:
        experts = [*self.shared, *self.dedicated[knowledge_type]]
        outs = torch.stack([expert(x) for expert in experts], dim=-2)  # [..., E, out]
        gate = torch.softmax(self.gates[knowledge_type](x), dim=-1).unsqueeze(-1)
        return (gate * outs).sum(-2)


def _expert(in_dim: int, cfg: KarConfig) -> nn.Module:
    return nn.Sequential(nn.Linear(in_dim, cfg.hidden), nn.ReLU(), nn.Dropout(cfg.dropout), nn.Linear(cfg.hidden, cfg.out_dim))


class KarAugmenter(Augmenter):
    """KAR: [adaptor(preference) broadcast ; adaptor(candidate's item knowledge)] per candidate."""

    PREFERENCE, KNOWLEDGE = 0, 1

    def __init__(self, user_table: Tensor, item_table: Tensor, cfg: KarConfig):
        super().__init__(user_table, item_table)
        self.adaptor = HybridExpertAdaptor(user_table.shape[1], cfg)
        self.out_dim = 2 * cfg.out_dim

    def forward(self, batch: BatchLike, item_repr: ItemRepr | None = None) -> Tensor:
        pref = self.adaptor(self.user_table[batch.user_ids], self.PREFERENCE)
        # An item's vector does not depend on the user: adapt each distinct candidate once per batch.
        items, where = batch.candidates.unique(return_inverse=True)
        know = self.adaptor(self.item_table[items], self.KNOWLEDGE)[where]
        return torch.cat([pref.unsqueeze(1).expand_as(know), know], dim=-1)


class RetrieverAugmenter(Augmenter):
    """UR4Rec: the retriever's multi-item fast path with the candidates' h_i as queries into Z (eq. 9)."""

    def __init__(self, retriever: Retriever, user_table: Tensor, item_table: Tensor, z_history: int, bf16: bool = False,
                 query_grad: bool = True):
        super().__init__(user_table, item_table)
        self.retriever = retriever
        self.z_history = z_history
        self.bf16 = bf16
        self.query_grad = query_grad
        self.out_dim = retriever.out_dim

    def forward(self, batch: BatchLike, item_repr: ItemRepr | None = None) -> Tensor:
        if item_repr is None:
            raise ValueError("the UR4Rec augmenter needs the backbone's item_repr for the candidates' h_i")
        z, mask = preference_keys(self.user_table, self.item_table, batch.user_ids, batch.history, self.z_history)
        h = item_repr(batch.candidates)
        if not self.query_grad:  # the backbone's item embeddings then learn from its own scores alone, as the control's
            h = h.detach()
        with maybe_bf16(self.bf16, h.device):
            aug = self.retriever.augment(h, z, mask)
        return aug.float()

    @torch.no_grad()
    def z_attention(self, batch: BatchLike, item_repr: ItemRepr) -> tuple[Tensor, Tensor, Tensor]:
        """What each candidate attended to in Z (evaluation only): `(weights [B, C, n_layers, 1 + m], z_ids
        [B, 1 + m], z_mask [B, 1 + m])`, the weights averaged over heads, key 0 the user's preference (z_id 0)
        and then the history items (their ids; masked padding weighs 0). On the fast path the query is the
        candidate's own position; with `item_proxies` the mean of the K proxies of that candidate's pass."""
        retriever = self.retriever
        b, c = batch.candidates.shape
        k = retriever.n_proxies
        with recording_cross_attention(retriever) as found:
            self.forward(batch, item_repr)
        layers = []
        for probs in found:
            w = probs.mean(1)  # over heads: [B', L, 1 + m]
            if retriever.per_item:
                w = w.reshape(b, c, k + 1, -1)
                w = w[:, :, :k].mean(2) if k else w[:, :, 0]
            else:
                w = w[:, k:]
            layers.append(w)
        _, mask = preference_keys(self.user_table, self.item_table, batch.user_ids, batch.history, self.z_history)
        hist = batch.history[:, -self.z_history:] if self.z_history > 0 else batch.history[:, :0]
        ids = torch.cat([torch.zeros_like(hist[:, :1]), hist], dim=1)
        return torch.stack(layers, dim=2), ids, mask


class AugmentedRecommender(nn.Module):
    """A backbone fed by an augmenter; same interface as a backbone, so the training loop needs no changes."""

    def __init__(self, backbone: nn.Module, augmenter: Augmenter):
        super().__init__()
        self.backbone = backbone
        self.augmenter = augmenter

    def forward(self, batch: BatchLike) -> Tensor:
        return self.backbone(batch, aug=self.augmenter(batch, self.backbone.item_repr))

    def item_repr(self, item_ids: Tensor) -> Tensor:
        return self.backbone.item_repr(item_ids)


def maybe_bf16(enabled: bool | str, device: torch.device):
    """bf16 autocast for the retriever's matmuls (about 2.5× faster on CPUs with AVX512-BF16 or AMX, 25×
    slower where it is emulated): `auto` turns it on only where bf16 is native (`ur4rec.precision`)."""
    if enabled == "auto":
        enabled = native_bf16(device.type)
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


# ---------------------------------------------------------------- the registry


@dataclass(frozen=True)
class AugmenterInputs:
    """What a builder may use; the tables are read lazily so a builder pays only for what it needs."""

    variant: VariantConfig
    user_table: Callable[[], Tensor]
    item_table: Callable[[], Tensor]
    dim: int
    z_history: int
    retriever: Retriever | None
    bf16: bool
    query_grad: bool = True


AUGMENTERS: dict[str, Callable[[AugmenterInputs], Augmenter]] = {}


def register_augmenter(kind: str):
    def add(builder: Callable[[AugmenterInputs], Augmenter]) -> Callable[[AugmenterInputs], Augmenter]:
        if kind in AUGMENTERS:
            raise ValueError(f"augmenter kind {kind!r} registered twice")
        AUGMENTERS[kind] = builder
        return builder

    return add


@register_augmenter("none")
def _control(x: AugmenterInputs) -> Augmenter:
    return ZeroAugmenter(x.dim)


@register_augmenter("bert")
@register_augmenter("llm")
def _broadcast(x: AugmenterInputs) -> Augmenter:
    return BroadcastAugmenter(x.user_table())


@register_augmenter("kar")
def _kar(x: AugmenterInputs) -> Augmenter:
    return KarAugmenter(x.user_table(), x.item_table(), x.variant.kar)


@register_augmenter("pooled")
def _pooled(x: AugmenterInputs) -> Augmenter:
    return PooledAugmenter(x.user_table(), x.item_table(), x.z_history)


@register_augmenter("ur4rec")
def _ur4rec(x: AugmenterInputs) -> Augmenter:
    if x.retriever is None:
        raise ValueError("the ur4rec augmenter needs a retriever")
    return RetrieverAugmenter(x.retriever, x.user_table(), x.item_table(), x.z_history, bf16=x.bf16,
                              query_grad=x.query_grad)
