"""The self-attention masks of Figure 3, as pure functions.

Convention: a boolean `[n, n]` tensor where `mask[q, k]` is True when query position `q` may attend to key
position `k` (the convention of `torch.nn.functional.scaled_dot_product_attention`). Proxies always come first
in the sequence, then the items.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def proxies_only(n_proxies: int) -> torch.Tensor:
    """(a) Proxies alone, bidirectional: every proxy sees every proxy (eq. 6)."""
    return torch.ones(n_proxies, n_proxies, dtype=torch.bool)


def proxies_and_item(n_proxies: int) -> torch.Tensor:
    """(b) Proxies plus one item, bidirectional: all K + 1 positions see each other (eq. 8)."""
    return torch.ones(n_proxies + 1, n_proxies + 1, dtype=torch.bool)


def proxies_and_items(n_proxies: int, n_items: int, proxies_see_items: bool = False) -> torch.Tensor:
    """(c) Proxies plus `n_items` items for the multi-item fast path (eq. 9).

    Each item sees the proxies and itself only, never another item. Proxies see each other and, when
    `proxies_see_items` is True (Figure 3(c) as drawn), every item too. With more than one block that lets item
    j reach item k through the proxies of the next block, so a candidate's vector would depend on the other
    candidates in the list; the default (False) keeps the proxies item-blind, which makes every item's output
    exactly that of a pass with the proxies and that item alone.
    """
    k, n = n_proxies, n_proxies + n_items
    mask = torch.zeros(n, n, dtype=torch.bool)
    mask[:k, :k] = True
    if proxies_see_items:
        mask[:k, k:] = True
    mask[k:, :k] = True
    idx = torch.arange(k, n)
    mask[idx, idx] = True
    return mask


@dataclass(frozen=True)
class ItemsSeeProxies:
    """(c) with item-blind proxies, `proxies_and_items(n_proxies, n_items, False)`, kept as structure rather than
    an `[n, n]` tensor: the retriever then attends each item over its K + 1 allowed keys instead of masking all
    n, about a seventh of the attention work at 100 candidates."""

    n_proxies: int
