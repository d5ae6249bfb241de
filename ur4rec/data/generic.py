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

from ur4rec.data.checks import drop_where, first_of_each, valid_interactions
from ur4rec.data.csvfile import read_csv
from ur4rec.data.lines import LINE, cast_checked, source
from ur4rec.data.schema import BadLines, DataFormatError, RawDataset, brief, empty_users

PROFILE = ("gender", "age", "occupation")
# What a Parquet column may hold, by role: anything else (a list for an id, a struct for a title) is refused.
ROLES = {"user_id": "id", "item_id": "id", "timestamp": "time", "rating": "scalar", "title": "scalar",
         "category": "categories", "categories": "categories", **{c: "scalar" for c in PROFILE}}
EXPECTED = {"id": "text or integers", "time": "unix seconds, ISO text or dates", "scalar": "text or numbers",
            "categories": "text or a list of text", "attribute": "text, numbers, dates or lists"}


def table_names(table: str) -> tuple[str, ...]:
    return (f"{table}.parquet", f"{table}.csv")


def find_table(raw_dir: Path, table: str) -> Path | None:
    return next((raw_dir / n for n in table_names(table) if (raw_dir / n).exists()), None)


def read_table(path: Path, required: tuple[str, ...], bad: BadLines, attributes: bool = False) -> pl.DataFrame:
    """All columns as strings (CSV) or as stored (Parquet), plus `line`; a missing column is an error.
    `attributes`: the table's other columns are kept (items), so their Parquet types are checked too."""
    if path.suffix == ".csv":
        return read_csv(path, bad, required)
    frame = _read_parquet(path, attributes)
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise DataFormatError(f"{path}: missing column(s) {missing}; found {frame.columns}")
    return frame.with_row_index(LINE, offset=1).with_columns(pl.col(LINE).cast(pl.Int64))


def _read_parquet(path: Path, attributes: bool) -> pl.DataFrame:
    try:
        frame = pl.read_parquet(path)
    except (pl.exceptions.PolarsError, pl.exceptions.PanicException, OSError) as exc:
        raise DataFormatError(f"{path}: not a readable Parquet file ({brief(exc)}); write it again") from exc
    if LINE in frame.columns:
        raise DataFormatError(f"{path}: column {LINE!r} is reserved for the row number; rename it")
    for column, dtype in frame.schema.items():
        role = ROLES.get(column, "attribute" if attributes else None)
        if role and not _fits(role, dtype):
            raise DataFormatError(f"{path}: column {column!r} has type {dtype}; expected {EXPECTED[role]}")
    return frame


def _fits(role: str, dtype: pl.DataType) -> bool:
    if dtype == pl.Null:  # a column written all null: each row is judged (and reported) on its own
        return True
    text = dtype in (pl.String, pl.Categorical)
    scalar = text or dtype.is_numeric() or dtype == pl.Boolean
    if role == "id":
        return text or dtype.is_integer()
    if role == "time":
        return text or dtype.is_numeric() or dtype in (pl.Date, pl.Datetime)
    if role == "categories":
        return text or dtype == pl.List(pl.String)
    if role == "scalar":
        return scalar
    return scalar or dtype.is_temporal() or dtype.is_nested()  # attributes are JSON-encoded as they are


def load(raw_dir: Path, bad: BadLines) -> RawDataset:
    interactions = load_interactions(find_table(raw_dir, "interactions"), bad)
    items = load_items(find_table(raw_dir, "items"), bad)
    users_path = find_table(raw_dir, "users")
    users = load_users(users_path, bad) if users_path else empty_users()
    return RawDataset(items=items, users=users, interactions=interactions)


def load_interactions(path: Path, bad: BadLines) -> pl.DataFrame:
    frame = read_table(path, ("user_id", "item_id", "timestamp"), bad)
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
    frame = frame.select(
        pl.col("user_id").alias("user"), pl.col("item_id").alias("item"), pl.col("seconds").alias("timestamp"),
        "rating", *source(path),
    )
    return valid_interactions(frame, path, bad)


def _timestamp(values: pl.Series) -> pl.Series:
    """Unix seconds from integers, numeric strings, or ISO dates/datetimes (UTC)."""
    if values.dtype.is_temporal():
        return values.cast(pl.Datetime("ms", "UTC")).dt.epoch("s")
    text = values.cast(pl.String).str.strip_chars()
    numeric = text.cast(pl.Float64, strict=False).cast(pl.Int64, strict=False)
    parsed = text.str.to_datetime(strict=False, time_zone="UTC", time_unit="ms").dt.epoch("s")
    return numeric.fill_null(parsed)


def load_items(path: Path, bad: BadLines) -> pl.DataFrame:
    frame = read_table(path, ("item_id", "title"), bad, attributes=True)
    frame = frame.with_columns(
        pl.col("item_id").cast(pl.String).str.strip_chars().alias("raw_id"),
        pl.col("title").cast(pl.String).str.strip_chars(),
    )
    no_title = frame.filter(pl.col("title").is_null() | (pl.col("title") == "") | pl.col("raw_id").is_null())
    bad.report_many("missing_title", (f"{path}:{n}" for n in no_title[LINE]), "items need an item_id and a title")
    frame = frame.filter(pl.col("title").is_not_null() & (pl.col("title") != "") & pl.col("raw_id").is_not_null())
    frame = first_of_each(frame, path, bad, "raw_id", "duplicate_item_id")
    column = next((c for c in ("categories", "category") if c in frame.columns), None)
    categories = _categories(frame[column]) if column else pl.Series([[]] * frame.height, dtype=pl.List(pl.String))
    extra = [c for c in frame.columns if c not in {"item_id", "raw_id", "title", LINE, column}]
    attributes = frame.select(pl.struct(extra).struct.json_encode()) if extra else pl.DataFrame({"a": ["{}"] * frame.height})
    items = frame.select("raw_id", "title").with_columns(
        categories.alias("categories"), attributes.to_series().alias("attributes")
    )
    return bad.require_rows(items, path, "items")


def _categories(values: pl.Series) -> pl.Series:
    if values.dtype == pl.List(pl.String):
        return values
    split = values.cast(pl.String).fill_null("").str.split("|")
    return split.list.eval(pl.element().str.strip_chars().filter(pl.element().str.strip_chars() != ""))


def load_users(path: Path, bad: BadLines) -> pl.DataFrame:
    """Profiles by user id; a blank id is a bad line, a repeated one keeps the first row."""
    frame = read_table(path, ("user_id",), bad).with_columns(pl.col("user_id").cast(pl.String).str.strip_chars())
    frame = drop_where(frame, path, bad, "bad_id", pl.col("user_id").is_null() | (pl.col("user_id") == ""),
                       "users need a user_id")
    frame = first_of_each(frame, path, bad, "user_id", "duplicate_user_id")
    return frame.select(
        pl.col("user_id").alias("raw_id"),
        *[(pl.col(c).cast(pl.String) if c in frame.columns else pl.lit(None, pl.String)).alias(c) for c in PROFILE],
    )
