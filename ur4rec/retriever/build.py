"""Build a variant's retriever and augmenter from typed configs, the embedding store and sizes."""

from __future__ import annotations

from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch

from ur4rec.retriever.augment import (
    Augmenter,
    BroadcastAugmenter,
    KarAugmenter,
    PooledAugmenter,
    RetrieverAugmenter,
)
from ur4rec.retriever.config import RetrieverConfig
from ur4rec.retriever.model import Retriever
from ur4rec.retriever.variants import VariantConfig


def count_users(prepared: Path) -> int:
    """The largest user id in `users.parquet` (ids are dense 1..n_users)."""
    path = Path(prepared) / "users.parquet"
    top = pc.max(pq.read_table(path, columns=["user_id"]).column("user_id")).as_py()
    if top is None:
        raise ValueError(f"{path}: no users")
    return int(top)


def build_retriever(rcfg: RetrieverConfig, variant: VariantConfig, backbone: str, h_dim: int, z_dim: int) -> Retriever:
    """A fresh retriever (BERT-initialised) with this variant's K for this backbone."""
    k = variant.proxy_count(rcfg.for_backbone(backbone).n_proxies)
    return Retriever(rcfg.arch, k, h_dim, z_dim)


def load_pretrained(retriever: Retriever, state: dict[str, torch.Tensor], redraw_proxies: bool) -> None:
    """Load pre-trained weights; `redraw_proxies` keeps the fresh random proxies (the 'proxy random' ablation)."""
    if redraw_proxies:
        state = {k: v for k, v in state.items() if k != "proxies"}
    missing, unexpected = retriever.load_state_dict(state, strict=False)
    allowed_missing = {"proxies"} if redraw_proxies else set()
    if set(missing) - allowed_missing or unexpected:
        raise ValueError(f"pre-trained retriever does not fit: missing {sorted(set(missing) - allowed_missing)}, unexpected {unexpected}")


def build_augmenter(
    variant: VariantConfig,
    rcfg: RetrieverConfig,
    backbone: str,
    store,
    n_users: int,
    n_items: int,
    h_dim: int,
    pretrained: dict[str, torch.Tensor] | None = None,
) -> Augmenter:
    """The augmenter of `variant`; `store` is an `EmbeddingStore` (anything with `.table(kind, size)`)."""
    user_kind, item_kind = variant.store_kinds
    users = store.table(user_kind, n_users + 1)
    if variant.kind in ("bert", "llm"):
        return BroadcastAugmenter(users)
    items = store.table(item_kind, n_items + 1)
    if variant.kind == "kar":
        return KarAugmenter(users, items, variant.kar)
    z_history = rcfg.for_backbone(backbone).z_history
    if variant.kind == "pooled":
        return PooledAugmenter(users, items, z_history)
    retriever = build_retriever(rcfg, variant, backbone, h_dim, users.shape[1])
    if pretrained is not None:
        load_pretrained(retriever, pretrained, redraw_proxies=variant.proxies == "random")
    return RetrieverAugmenter(retriever, users, items, z_history, bf16=rcfg.arch.bf16)
