"""Iterative k-core filtering of an interaction table."""

from __future__ import annotations

import polars as pl


def k_core(interactions: pl.DataFrame, k: int, user: str = "user", item: str = "item") -> pl.DataFrame:
    """The maximal sub-table in which every user and every item has at least `k` interactions.

    One pass can push a neighbour below `k`, so passes repeat until nothing changes. Removing every row of a
    user or item below `k` in the current table never removes a row of the maximal k-core (its degrees there
    are at least `k`, and the current table contains it), so the fixpoint is that maximal core.
    """
    if k <= 1:
        return interactions
    while True:
        kept = interactions.filter((pl.len().over(user) >= k) & (pl.len().over(item) >= k))
        if kept.height == interactions.height:
            return kept
        interactions = kept
