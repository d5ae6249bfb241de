"""The prepare stage: raw files -> `data/<name>/prepared/` (items, users, interactions, splits, stats).

Steps: load -> validate ids -> rating threshold -> de-duplicate (user, item) -> iterative k-core -> dense ids
-> chronological order -> user split -> samples -> frozen candidates -> LLM histories. Every output file is
written into a temporary folder swapped in whole, so the next stage never sees a half-written set.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import polars as pl

from ur4rec.data.candidates import Seen, candidate_lists
from ur4rec.data.config import DatasetConfig, PrepareConfig
from ur4rec.data.kcore import k_core
from ur4rec.data.registry import missing_files, raw_format
from ur4rec.data.samples import build_samples, llm_histories, target_positions, user_sequences
from ur4rec.data.schema import BadLines, DataFormatError, RawDataset, attributes_json
from ur4rec.data.split import SPLITS, split_users
from ur4rec.io import atomic_dir, write_json, write_parquet
from ur4rec.paths import DatasetPaths


def prepare_dataset(
    name: str, dataset: DatasetConfig, cfg: PrepareConfig, raw_dir: Path | None = None, out: Path | None = None
) -> dict[str, Any]:
    """Prepare dataset `name` (its `dataset:` block and effective `prepare:` settings); returns the stats
    written to `stats.json`."""
    paths = DatasetPaths(name)
    raw_dir, out = Path(raw_dir or paths.raw), Path(out or paths.prepared)
    missing = missing_files(raw_dir, dataset) if raw_dir.is_dir() else raw_format(dataset.format).files(dataset)
    if missing:
        wanted = ", ".join(spec.describe() for spec in missing)
        raise FileNotFoundError(f"dataset {name!r}: {raw_dir} lacks {wanted} (run `ur4rec fetch --dataset {name}`)")
    bad = BadLines(cfg.on_bad_line)
    raw = raw_format(dataset.format).load(raw_dir, dataset, bad)
    tables, stats = prepare_tables(raw, name, dataset, cfg, bad)
    used = {k: getattr(dataset, k) for k in ("format", "category", "min_rating", "k_core")}
    if cfg.llm_history_cut == "none":
        stats["LEAKY"] = "llm_history_cut: none: the LLM saw every target; for the leakage diagnostic only"
    stats["params"] = {"dataset": used, "prepare": asdict(cfg)}
    with atomic_dir(out) as tmp:
        for table_name, table in tables.items():
            # Lists of random item ids do not compress by dictionary; skipping it halves the write time.
            write_parquet(tmp / f"{table_name}.parquet", table, use_dictionary=table_name not in SPLITS)
        write_json(tmp / "stats.json", stats)
    return stats


def prepare_tables(
    raw: RawDataset, name: str, dataset: DatasetConfig, cfg: PrepareConfig, bad: BadLines
) -> tuple[dict[str, pl.DataFrame], dict[str, Any]]:
    """The pure part of the stage: normalised raw tables in, artifact tables and stats out."""
    counts: dict[str, int] = {"raw_interactions": raw.interactions.height}
    items = unique_items(raw.items, bad)
    inter = known_items(raw, items, bad, counts)
    items = with_fallback_items(items, inter, raw.items_complete, counts)
    inter = filter_interactions(inter, dataset, cfg, counts)
    if inter.is_empty():
        raise DataFormatError(f"dataset {name!r}: no interactions left after filtering ({counts})")
    items, users, inter = dense_ids(items, raw.users, inter)
    counts["items_with_fallback_title"] = items.filter(pl.col("attributes").str.contains('"title_from"')).height
    splits = split_users(users["user_id"].to_numpy(), cfg.split, cfg.seed)
    seqs = target_positions(user_sequences(inter, splits), cfg)
    counts["users_without_lists"] = int(seqs.filter(pl.col("first") >= pl.col("stop")).height)
    users = users.join(splits, on="user_id").join(llm_histories(seqs), on="user_id", how="left")
    tables = {
        "items": items,
        "users": users.select(
            "user_id", "raw_id", "split", "gender", "age", "occupation", "llm_history", "llm_history_ratings"
        ).sort("user_id"),
        "interactions": inter.select("user_id", "item_id", "timestamp", "rating"),
    }
    seen = Seen(inter, items.height)
    for split in SPLITS:
        samples = build_samples(seqs.filter(pl.col("split") == split), cfg.history_len)
        candidates, target_pos = candidate_lists(samples, split, seen, cfg.n_candidates, cfg.seed, name)
        tables[split] = samples.with_columns(candidates, target_pos)
    empty = [split for split in SPLITS if tables[split].is_empty()]
    if empty:
        raise DataFormatError(
            f"dataset {name!r}: no {'/'.join(empty)} lists: its users are too short for llm_history_len="
            f"{cfg.llm_history_len} plus their targets; lower prepare.llm_history_len or eval_samples_per_user "
            f"(in the dataset's own `prepare:` block)")
    stats = dataset_stats(tables, counts, bad, raw.notes)
    return tables, stats


def unique_items(items: pl.DataFrame, bad: BadLines) -> pl.DataFrame:
    """One row per raw item id; a repeated id in an item table is bad input (loaders merge known duplicates)."""
    dup = items.filter(pl.col("raw_id").is_duplicated())["raw_id"].unique(maintain_order=True)
    bad.report_many("duplicate_item_id", (f"items table, item {r!r}" for r in dup), "the first row is kept")
    return items.unique("raw_id", keep="first", maintain_order=True)


def known_items(raw: RawDataset, items: pl.DataFrame, bad: BadLines, counts: dict[str, int]) -> pl.DataFrame:
    """Interactions whose item is in a complete catalogue; others are bad input (named by file and line)."""
    inter = raw.interactions
    if not raw.items_complete:
        return inter
    unknown = inter.join(items.select("raw_id"), left_on="item", right_on="raw_id", how="anti")
    bad.report_many(
        "unknown_item",
        (f"{f}:{n}" for f, n in unknown.select(pl.col("file").cast(pl.String), "line").iter_rows()),
        "item id not in the items file",
    )
    counts["unknown_item_interactions"] = unknown.height
    return inter.join(items.select("raw_id"), left_on="item", right_on="raw_id", how="semi")


def with_fallback_items(items: pl.DataFrame, inter: pl.DataFrame, complete: bool, counts: dict[str, int]) -> pl.DataFrame:
    """Items seen in interactions but absent from an incomplete catalogue get their raw id as title (counted)."""
    if complete:
        return items
    missing = inter.select(pl.col("item").unique()).join(items, left_on="item", right_on="raw_id", how="anti")
    counts["items_without_metadata"] = missing.height
    extra = missing.select(
        pl.col("item").alias("raw_id"),
        pl.col("item").alias("title"),
        pl.lit([], dtype=pl.List(pl.String)).alias("categories"),
        pl.lit(attributes_json({"title_from": "raw_id"})).alias("attributes"),
    )
    return pl.concat([items, extra], how="vertical")


def filter_interactions(inter: pl.DataFrame, dataset: DatasetConfig, cfg: PrepareConfig, counts: dict[str, int]) -> pl.DataFrame:
    """Rating threshold, (user, item) de-duplication, iterative k-core; each step's removals are counted."""
    kept = inter.filter(pl.col("rating").is_null() | (pl.col("rating") >= dataset.min_rating))
    counts["below_min_rating"] = inter.height - kept.height
    # Keep the earliest (or latest) repeat of a (user, item) pair; ties broken by position in the raw file.
    descending = cfg.duplicates == "latest"
    deduped = kept.sort("timestamp", "file", "line", descending=descending).unique(
        ["user", "item"], keep="first", maintain_order=True
    )
    counts["duplicate_interactions"] = kept.height - deduped.height
    core = k_core(deduped, dataset.k_core)
    counts["removed_by_k_core"] = deduped.height - core.height
    counts["users_removed_by_k_core"] = deduped["user"].n_unique() - core["user"].n_unique()
    counts["items_removed_by_k_core"] = deduped["item"].n_unique() - core["item"].n_unique()
    return core


def dense_order(raw_ids: pl.Series) -> pl.Series:
    """Raw ids in a deterministic order: numerically when all are integers, else lexicographically."""
    numeric = raw_ids.cast(pl.Int64, strict=False)
    if numeric.null_count() == 0:
        return pl.DataFrame({"raw": raw_ids, "key": numeric}).sort("key")["raw"]
    return raw_ids.sort()


def dense_ids(
    items: pl.DataFrame, users: pl.DataFrame, inter: pl.DataFrame
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Number kept items and users 1..n (0 is padding); sort interactions by user, time, item."""
    item_map = _id_map(inter["item"], "item_id")
    user_map = _id_map(inter["user"], "user_id")
    items = item_map.join(items, on="raw_id", how="left").sort("item_id")
    items = items.with_columns(
        pl.col("title").fill_null(pl.col("raw_id")),
        pl.col("categories").fill_null(pl.lit([], dtype=pl.List(pl.String))),
        pl.col("attributes").fill_null("{}"),
    )
    items = with_category_ids(items)
    users = user_map.join(users.unique("raw_id", keep="first"), on="raw_id", how="left").sort("user_id")
    inter = (
        inter.join(user_map, left_on="user", right_on="raw_id")
        .join(item_map, left_on="item", right_on="raw_id")
        .select("user_id", "item_id", "timestamp", "rating")
        .sort("user_id", "timestamp", "item_id")
    )
    return items, users, inter


def _id_map(raw: pl.Series, column: str) -> pl.DataFrame:
    ordered = dense_order(raw.unique())
    return pl.DataFrame({"raw_id": ordered, column: pl.int_range(1, len(ordered) + 1, eager=True)}).select(
        "raw_id", pl.col(column).cast(pl.Int64)
    )


def with_category_ids(items: pl.DataFrame) -> pl.DataFrame:
    """Dense category ids 1..n_categories, numbered in sorted name order."""
    names = items["categories"].explode().drop_nulls().unique().sort()
    lookup = {name: k for k, name in enumerate(names.to_list(), start=1)}
    ids = pl.col("categories").list.eval(pl.element().replace_strict(lookup, return_dtype=pl.Int64))
    return items.with_columns(ids.alias("category_ids")).select(
        "item_id", "raw_id", "title", "categories", "category_ids", "attributes"
    )


def dataset_stats(
    tables: dict[str, pl.DataFrame], counts: dict[str, int], bad: BadLines, notes: dict[str, int]
) -> dict[str, Any]:
    """Table-1 counts (users, items, interactions, density) plus samples per split and every skip by reason."""
    n_users, n_items, n_inter = tables["users"].height, tables["items"].height, tables["interactions"].height
    split_users_ = tables["users"].group_by("split").len()
    return {
        "users": n_users,
        "items": n_items,
        "interactions": n_inter,
        "density": n_inter / (n_users * n_items) if n_users and n_items else 0.0,
        "avg_interactions_per_user": n_inter / n_users if n_users else 0.0,
        "samples": {split: tables[split].height for split in SPLITS},
        "users_per_split": {s: int(n) for s, n in split_users_.iter_rows()},
        "filtering": counts,
        "skipped_lines": dict(sorted(bad.counts.items())),
        "skipped_examples": dict(sorted(bad.examples.items())),
        "loader": dict(sorted(notes.items())),
    }
