"""Reranking samples from chronological user sequences, and the history the LLM may see.

Chronological order is the total order (timestamp, item id); "before" always means earlier in that order, so
a sample's history and a user's LLM history never contain its target or anything after it.
"""

from __future__ import annotations

import polars as pl

SAMPLE_COLUMNS = ["sample_id", "user_id", "split", "position", "target", "history"]


def user_sequences(interactions: pl.DataFrame, splits: pl.DataFrame) -> pl.DataFrame:
    """One row per user: `items`, `ratings` in chronological order and the user's `split`.

    `interactions` must already be sorted by user, timestamp, item id.
    """
    seqs = interactions.group_by("user_id", maintain_order=True).agg(
        pl.col("item_id").alias("items"), pl.col("rating").alias("ratings")
    )
    return seqs.join(splits, on="user_id", how="left").sort("user_id")


def target_positions(seqs: pl.DataFrame, train_samples_per_user: int) -> pl.DataFrame:
    """Add `first`, `stop`: targets are positions first..stop-1 of each sequence.

    Valid/test users: only the last interaction. Train users: each of the last N. A target needs at least one
    history item, so position 0 is never a target.
    """
    n = pl.col("items").list.len().cast(pl.Int64)  # signed: n - N must not wrap around
    per_user = pl.when(pl.col("split") == "train").then(pl.lit(train_samples_per_user)).otherwise(pl.lit(1))
    first = pl.max_horizontal(n - per_user, pl.lit(1))
    return seqs.with_columns(first=first, stop=pl.max_horizontal(n, first))


def build_samples(seqs: pl.DataFrame, history_len: int) -> pl.DataFrame:
    """Explode each user's target positions into samples with the last `history_len` items before the target.

    `sample_id` numbers samples 1.. in (user, position) order, unique across splits.
    """
    exploded = (
        seqs.with_columns(pl.int_ranges("first", "stop", dtype=pl.Int64).alias("position"))
        .explode("position")
        .drop_nulls("position")
    )
    start = pl.max_horizontal(pl.col("position") - history_len, pl.lit(0))
    samples = exploded.select(
        "user_id",
        "split",
        "position",
        pl.col("items").list.get(pl.col("position")).alias("target"),
        pl.col("items").list.slice(start, pl.col("position") - start).alias("history"),
    ).sort("user_id", "position")
    return samples.with_row_index("sample_id", offset=1).with_columns(pl.col("sample_id").cast(pl.Int64))


def llm_histories(seqs: pl.DataFrame, llm_history_len: int) -> pl.DataFrame:
    """(`user_id`, `llm_history`, `llm_history_ratings`): at most `llm_history_len` items, oldest first,
    ending strictly before the user's earliest target (`first`); users without a target keep their last items."""
    n = pl.col("items").list.len().cast(pl.Int64)
    end = pl.when(pl.col("first") < pl.col("stop")).then(pl.col("first")).otherwise(n)
    start = pl.max_horizontal(end - llm_history_len, pl.lit(0))
    return seqs.select(
        "user_id",
        pl.col("items").list.slice(start, end - start).alias("llm_history"),
        pl.col("ratings").list.slice(start, end - start).alias("llm_history_ratings"),
    )
