"""A generic format for users' own data: tables as CSV (UTF-8, with a header) or Parquet.

- `interactions.{parquet,csv}`: `user_id`, `item_id`, `timestamp` (unix seconds, or an ISO date/datetime
  read as UTC)[, `rating`];
- `items.{parquet,csv}`: `item_id`, `title`[, `category` or `categories` ("a|b" text or a list); every other
  column goes into `attributes`];
- optional `users.{parquet,csv}`: `user_id`[, `gender`, `age`, `occupation`].

The items table is the catalogue: an interaction with an item not in it is bad input. Errors name the file
and line (for Parquet, the 1-based row).
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from ur4rec.data.lines import LINE, cast_checked, source
from ur4rec.data.schema import BadLines, DataFormatError, RawDataset, empty_users

PROFILE = ("gender", "age", "occupation")


def table_names(table: str) -> tuple[str, ...]:
    return (f"{table}.parquet", f"{table}.csv")


def find_table(raw_dir: Path, table: str) -> Path | None:
    return next((raw_dir / n for n in table_names(table) if (raw_dir / n).exists()), None)


def read_table(path: Path, required: tuple[str, ...]) -> pl.DataFrame:
    """All columns as strings (CSV) or as stored (Parquet), plus `line`; a missing column is an error."""
    if path.suffix == ".csv":
        try:
            frame = pl.read_csv(path, infer_schema=False, encoding="utf8")
        except pl.exceptions.ComputeError as exc:
            raise DataFormatError(f"{path}: not a readable UTF-8 CSV: {exc}") from exc
        first = 2  # line 1 is the header
    else:
        frame = pl.read_parquet(path)
        first = 1
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise DataFormatError(f"{path}: missing column(s) {missing}; found {frame.columns}")
    return frame.with_row_index(LINE, offset=first).with_columns(pl.col(LINE).cast(pl.Int64))


def load(raw_dir: Path, bad: BadLines) -> RawDataset:
    interactions = load_interactions(find_table(raw_dir, "interactions"), bad)
    items = load_items(find_table(raw_dir, "items"), bad)
    users_path = find_table(raw_dir, "users")
    users = load_users(users_path) if users_path else empty_users()
    return RawDataset(items=items, users=users, interactions=interactions)


def load_interactions(path: Path, bad: BadLines) -> pl.DataFrame:
    frame = read_table(path, ("user_id", "item_id", "timestamp"))
    frame = frame.with_columns(
        pl.col("user_id").cast(pl.String).str.strip_chars(),
        pl.col("item_id").cast(pl.String).str.strip_chars(),
        _timestamp(frame["timestamp"]).alias("seconds"),
        (pl.col("rating") if "rating" in frame.columns else pl.lit(None)).cast(pl.String).alias("rating"),
    )
    failed = frame.filter(pl.col("seconds").is_null())
    bad.report_many(
        "unparseable_value", (f"{path}:{n}" for n in failed[LINE]), "timestamp must be unix seconds or an ISO date"
    )
    frame = cast_checked(frame.filter(pl.col("seconds").is_not_null()), path, {"rating": pl.Float64}, bad,
                         required=("user_id", "item_id"))
    return frame.select(
        pl.col("user_id").alias("user"), pl.col("item_id").alias("item"), pl.col("seconds").alias("timestamp"),
        "rating", *source(path),
    )


def _timestamp(values: pl.Series) -> pl.Series:
    """Unix seconds from integers, numeric strings, or ISO dates/datetimes (UTC)."""
    if values.dtype.is_temporal():
        return values.cast(pl.Datetime("ms", "UTC")).dt.epoch("s")
    text = values.cast(pl.String).str.strip_chars()
    numeric = text.cast(pl.Float64, strict=False).cast(pl.Int64, strict=False)
    parsed = text.str.to_datetime(strict=False, time_zone="UTC", time_unit="ms").dt.epoch("s")
    return numeric.fill_null(parsed)


def load_items(path: Path, bad: BadLines) -> pl.DataFrame:
    frame = read_table(path, ("item_id", "title"))
    frame = frame.with_columns(
        pl.col("item_id").cast(pl.String).str.strip_chars().alias("raw_id"),
        pl.col("title").cast(pl.String).str.strip_chars(),
    )
    no_title = frame.filter(pl.col("title").is_null() | (pl.col("title") == "") | pl.col("raw_id").is_null())
    bad.report_many("missing_title", (f"{path}:{n}" for n in no_title[LINE]), "items need an item_id and a title")
    frame = frame.filter(pl.col("title").is_not_null() & (pl.col("title") != "") & pl.col("raw_id").is_not_null())
    column = next((c for c in ("categories", "category") if c in frame.columns), None)
    categories = _categories(frame[column]) if column else pl.Series([[]] * frame.height, dtype=pl.List(pl.String))
    extra = [c for c in frame.columns if c not in {"item_id", "raw_id", "title", LINE, column}]
    attributes = frame.select(pl.struct(extra).struct.json_encode()) if extra else pl.DataFrame({"a": ["{}"] * frame.height})
    return frame.select("raw_id", "title").with_columns(
        categories.alias("categories"), attributes.to_series().alias("attributes")
    )


def _categories(values: pl.Series) -> pl.Series:
    if values.dtype == pl.List(pl.String):
        return values
    split = values.cast(pl.String).fill_null("").str.split("|")
    return split.list.eval(pl.element().str.strip_chars().filter(pl.element().str.strip_chars() != ""))


def load_users(path: Path) -> pl.DataFrame:
    frame = read_table(path, ("user_id",))
    return frame.select(
        pl.col("user_id").cast(pl.String).str.strip_chars().alias("raw_id"),
        *[(pl.col(c).cast(pl.String) if c in frame.columns else pl.lit(None, pl.String)).alias(c) for c in PROFILE],
    )
