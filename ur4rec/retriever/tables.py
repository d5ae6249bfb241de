"""The vector tables an augmenter and the retriever read (row = id, row 0 the zero padding), built one way for
pre-training and joint training: the variant's content (real, or a negative control's), then optionally
z-scored (`retriever.joint.standardise`).

Why z-scoring per dimension, not a LayerNorm: MiniLM vectors share a mean vector that carries 43–77% of their
energy, and a step of the fusion on that shared component rescales every candidate at once. Subtracting the
per-dimension mean removes exactly that shared vector; a LayerNorm subtracts each vector's own scalar mean over
its dimensions, which leaves the shared vector in place. No leakage: the user statistics come from TRAINING
users only (a valid or test user's vector never shapes the transform); item statistics come from every item
(an item's text is not a label). Negative controls (`VariantConfig.content`, `item_content`) are built from the
same statistics, and standardised by the real table's, so they differ from their real arm only in content.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from ur4rec.retriever.variants import VariantConfig

EPS = 1e-6  # a dimension constant over the statistics' rows is centred, not blown up


def user_table(store, variant: VariantConfig, n_users: int, train_users: Sequence[int] | None,
               standardise: bool) -> Tensor:
    """The user vectors `[n_users + 1, D]` of `variant` (its content), z-scored over training users if asked."""
    real = store.table(variant.store_kinds[0], n_users + 1).float()
    if variant.content == "real" and not standardise:
        return real
    if train_users is None:
        raise ValueError("shuffled, random or standardised user tables need the training users")
    rows = torch.as_tensor(np.asarray(train_users, dtype=np.int64))
    if len(rows) < 2:
        raise ValueError(f"user tables need at least 2 training users for their statistics, got {len(rows)}")
    table = with_content(real, variant.content, rows, variant.content_seed)
    return zscore(table, real[rows]) if standardise else table


def item_table(store, variant: VariantConfig, n_items: int, standardise: bool) -> Tensor:
    """The item vectors `[n_items + 1, D]` of `variant` (its item content), z-scored over items if asked."""
    real = store.table(variant.store_kinds[1], n_items + 1).float()
    rows = torch.arange(1, n_items + 1)
    table = with_content(real, variant.item_content, rows, variant.content_seed)
    return zscore(table, real[rows]) if standardise else table


def with_content(real: Tensor, content: str, rows: Tensor, seed: int) -> Tensor:
    if content == "real":
        return real
    if content == "shuffled":
        return shuffled(real, rows, seed)
    if content == "random":
        return random_like(real, real[rows], seed)
    raise ValueError(f"unknown content {content!r}")


def shuffled(table: Tensor, rows: Tensor, seed: int) -> Tensor:
    """Each id's vector taken from another of `rows` (the training users): over `rows` a fixed derangement (a
    seeded permutation, each row taking the next one's vector in it), so those rows hold the real rows
    permuted; every other id (valid, test) gets a seeded draw from `rows`. Row 0 stays the padding."""
    g = np.random.default_rng(seed)
    order = rows[torch.as_tensor(g.permutation(len(rows)))]
    source = torch.arange(table.shape[0])
    others = torch.ones(table.shape[0], dtype=torch.bool)
    others[0] = False
    others[rows] = False
    source[order] = order.roll(-1)
    source[others] = rows[torch.as_tensor(g.integers(0, len(rows), int(others.sum())))]
    return table[source]


def random_like(table: Tensor, reference: Tensor, seed: int) -> Tensor:
    """Gaussian vectors with `reference`'s per-dimension mean and SD, one per id and fixed per id: numpy fills
    the draws row by row, so row i is the same in a table of any size. Row 0 stays the padding."""
    mean, sd = reference.mean(0), reference.std(0)
    draws = np.random.default_rng(seed).standard_normal(tuple(table.shape), dtype=np.float32)
    out = torch.from_numpy(draws) * sd + mean
    out[0] = 0
    return out


def zscore(table: Tensor, reference: Tensor) -> Tensor:
    """`(table - mean) / SD` per dimension with `reference`'s statistics; row 0 stays the padding."""
    out = (table - reference.mean(0)) / reference.std(0).clamp(min=EPS)
    out[0] = 0
    return out
