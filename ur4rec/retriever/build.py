"""Build a variant's augmenter from typed configs and the embedding store, through the augmenter registry."""

from __future__ import annotations

from typing import Sequence

import torch

from ur4rec.retriever.augment import AUGMENTERS, Augmenter, AugmenterInputs
from ur4rec.retriever.config import BackboneRetrieverConfig, RetrieverConfig
from ur4rec.retriever.model import Retriever
from ur4rec.retriever.tables import item_table, user_table
from ur4rec.retriever.variants import VariantConfig


def build_retriever(rcfg: RetrieverConfig, variant: VariantConfig, per_backbone: BackboneRetrieverConfig,
                    h_dim: int, z_dim: int) -> Retriever:
    """A fresh retriever (BERT-initialised) with this variant's K for this backbone."""
    return Retriever(rcfg.arch, variant.proxy_count(per_backbone.n_proxies), h_dim, z_dim)


def load_pretrained(retriever: Retriever, state: dict[str, torch.Tensor], redraw_proxies: bool) -> None:
    """Load pre-trained weights; `redraw_proxies` keeps the fresh random proxies (the 'proxy random' ablation)."""
    if redraw_proxies:
        state = {k: v for k, v in state.items() if k != "proxies"}
    missing, unexpected = retriever.load_state_dict(state, strict=False)
    allowed_missing = {"proxies"} if redraw_proxies else set()
    if set(missing) - allowed_missing or unexpected:
        raise ValueError(f"pre-trained retriever does not fit: missing {sorted(set(missing) - allowed_missing)}, unexpected {unexpected}")


def build_augmenter(variant: VariantConfig, rcfg: RetrieverConfig, per_backbone: BackboneRetrieverConfig,
                    store, n_users: int, n_items: int, h_dim: int,
                    pretrained: dict[str, torch.Tensor] | None = None,
                    train_users: Sequence[int] | None = None) -> Augmenter:
    """The augmenter of `variant`; `store` is an `EmbeddingStore` (anything with `.dim` and `.table(kind, size)`);
    `train_users`: the training split's user ids, whose vectors alone give the user statistics (`tables.py`)."""
    standardise = rcfg.joint.standardise
    retriever = None
    if variant.uses_retriever:
        retriever = build_retriever(rcfg, variant, per_backbone, h_dim, store.dim)
        if pretrained is not None:
            load_pretrained(retriever, pretrained, redraw_proxies=variant.proxies == "random")
    inputs = AugmenterInputs(
        variant=variant,
        user_table=lambda: user_table(store, variant, n_users, train_users, standardise),
        item_table=lambda: item_table(store, variant, n_items, standardise),
        dim=store.dim,
        z_history=per_backbone.z_history,
        retriever=retriever,
        bf16=rcfg.arch.bf16,
        query_grad=rcfg.joint.query_grad,
    )
    return AUGMENTERS[variant.kind](inputs)
