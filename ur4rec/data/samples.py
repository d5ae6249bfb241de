"""Reranking targets from chronological user sequences, and the history the LLM may see.

Chronological order is the total order (timestamp, item id); "before" always means earlier in that order. A
user's sequence has positions 0..n-1; the targets are positions `first..stop-1`, and the LLM window is
positions `llm_start..llm_end-1`. With `llm_history_cut: before_targets` the window ends at `first`, so no
target and nothing after it reaches the LLM; a sample's model history is the items just before its target.

Protocols (`prepare.protocol`):
- `last`: valid/test users' last `eval_samples_per_user` interactions and training users' last
  `train_samples_per_user` (or all) become targets, never before position `llm_history_len` (nor 1); the LLM
  sees the `llm_history_len` items just before the earliest target. A user too short for that has no target.
- `kar` (KAR's): the LLM sees the first half of the sequence (at most `kar_llm_history_max` items) and every
  later interaction is a target, in every split.
With `llm_history_cut: none` (the LEAKY diagnostic) the window runs on to the end of the sequence: the LLM
sees the clean window plus every target, and nothing else changes.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa

from ur4rec.data.config import PrepareConfig

def user_sequences(interactions: pl.DataFrame, splits: pl.DataFrame) -> pl.DataFrame:
    """One row per user: `items`, `ratings` in chronological order and the user's `split`.

    `interactions` must already be sorted by user, timestamp, item id.
    """
    seqs = interactions.group_by("user_id", maintain_order=True).agg(
        pl.col("item_id").alias("items"), pl.col("rating").alias("ratings")
    )
    return seqs.join(splits, on="user_id", how="left").sort("user_id")


def target_positions(seqs: pl.DataFrame, cfg: PrepareConfig) -> pl.DataFrame:
    """Add `first`, `stop` (targets are positions first..stop-1) and `llm_start`, `llm_end` (the LLM window)."""
    n = pl.col("items").list.len().cast(pl.Int64)  # signed: n - N must not wrap around
    if cfg.protocol == "kar":
        llm_end = pl.min_horizontal(n // 2, pl.lit(cfg.kar_llm_history_max))
        first = pl.max_horizontal(llm_end, pl.lit(1))
        llm_start = pl.lit(0, dtype=pl.Int64)
    else:
        per_train = None if cfg.train_samples_per_user == "all" else int(cfg.train_samples_per_user)
        train_first = pl.lit(0, dtype=pl.Int64) if per_train is None else n - per_train
        first_wanted = pl.when(pl.col("split") == "train").then(train_first).otherwise(n - cfg.eval_samples_per_user)
        first = pl.max_horizontal(first_wanted, pl.lit(cfg.llm_history_len), pl.lit(1))
        llm_end = pl.min_horizontal(first, n)
        llm_start = pl.max_horizontal(llm_end - cfg.llm_history_len, pl.lit(0))
    out = seqs.with_columns(first=first).with_columns(
        stop=pl.max_horizontal(n, pl.col("first")), llm_end=llm_end, llm_start=llm_start)
    if cfg.llm_history_cut == "none":
        out = out.with_columns(llm_end=n)
    return out


POSITION_BASE = 1_000_000  # sample_id = user_id * POSITION_BASE + position


def build_samples(seqs: pl.DataFrame, history_len: int) -> pl.DataFrame:
    """One row per target position: (`sample_id`, `user_id`, `target`, `history`), `history` the last
    `history_len` items before the target, oldest first.

    `sample_id = user_id * 1_000_000 + position`: unique across splits, ordered by (user, position), and
    stable when another split's protocol changes. Built from flat arrays (no per-row Python, no copy of a
    user's sequence per sample), so all of ML-1M's interactions become lists in seconds.
    """
    users = seqs["user_id"].to_numpy().astype(np.int64)
    items = seqs["items"].cast(pl.List(pl.Int64)).rechunk().to_arrow()
    if isinstance(items, pa.ChunkedArray):
        items = items.combine_chunks()
    offsets = items.offsets.to_numpy().astype(np.int64)
    offsets = offsets - offsets[0] if len(offsets) else np.zeros(1, np.int64)
    flat = items.flatten().to_numpy(zero_copy_only=False).astype(np.int64)
    lengths = np.diff(offsets)
    if len(lengths) and lengths.max() >= POSITION_BASE:
        raise ValueError(f"a user has {lengths.max()} interactions; sample ids allow fewer than {POSITION_BASE}")
    first, stop = seqs["first"].to_numpy().astype(np.int64), seqs["stop"].to_numpy().astype(np.int64)
    counts = np.maximum(stop - first, 0)
    row_user = np.repeat(np.arange(len(users)), counts)
    position = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts) + np.repeat(first, counts)
    base = offsets[:-1][row_user]
    kept = np.minimum(position, history_len)
    hist_offsets = np.concatenate([[0], np.cumsum(kept)])
    within = np.arange(hist_offsets[-1]) - np.repeat(hist_offsets[:-1], kept)
    history = pa.LargeListArray.from_arrays(hist_offsets, flat[np.repeat(base + position - kept, kept) + within])
    return pl.DataFrame({
        "sample_id": users[row_user] * POSITION_BASE + position,
        "user_id": users[row_user],
        "target": flat[base + position],
        "history": pl.Series("history", history, dtype=pl.List(pl.Int64)),
    })


def llm_histories(seqs: pl.DataFrame) -> pl.DataFrame:
    """(`user_id`, `llm_history`, `llm_history_ratings`): the items of each user's LLM window, oldest first."""
    return seqs.select(
        "user_id",
        pl.col("items").list.slice(pl.col("llm_start"), pl.col("llm_end") - pl.col("llm_start")).alias("llm_history"),
        pl.col("ratings").list.slice(pl.col("llm_start"), pl.col("llm_end") - pl.col("llm_start")).alias("llm_history_ratings"),
    )
