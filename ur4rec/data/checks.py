"""Values a parser accepts but no real record holds, checked on every loaded interactions table.

A timestamp before 1970 or after 2100 (often milliseconds taken for seconds), a rating that is NaN, infinite
or off the format's scale, a blank id, or one holding control characters (a quote left open in a CSV
swallows the following lines into one field) is a bad record like an unparseable one: named by file and line,
or skipped and counted under `prepare.on_bad_line`. Nothing downstream would notice them otherwise.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from ur4rec.data.lines import LINE
from ur4rec.data.schema import BadLines

EARLIEST, LATEST = 0, 4_102_444_800  # 1970-01-01 and 2100-01-01 UTC, in unix seconds
CONTROL = r"[\x00-\x1F\x7F]"


def drop_where(
    frame: pl.DataFrame, path: Path, bad: BadLines, reason: str, failed: pl.Expr, detail: str
) -> pl.DataFrame:
    """Report the rows where `failed` holds (a null counts as failed) and return the others."""
    failed = failed.fill_null(True)
    rows = frame.filter(failed)
    bad.report_many(reason, (f"{path}:{n}" for n in rows[LINE]), detail)
    return frame.filter(~failed)


def valid_interactions(
    frame: pl.DataFrame, path: Path, bad: BadLines, ratings: tuple[float, float] | None = None
) -> pl.DataFrame:
    """`frame` (`user`, `item`, `timestamp`, `rating`, `line`) without implausible rows; an error naming
    `path` when none is left. `ratings` is the format's scale; None accepts any finite rating."""
    frame = drop_where(frame, path, bad, "bad_id", ~(_usable_id("user") & _usable_id("item")),
                       "user and item ids must be non-blank and free of control characters")
    frame = drop_where(frame, path, bad, "timestamp_out_of_range", ~pl.col("timestamp").is_between(EARLIEST, LATEST),
                       f"unix seconds between {EARLIEST} (1970) and {LATEST} (2100) expected")
    lo, hi = ratings or (float("-inf"), float("inf"))
    rating = pl.col("rating").cast(pl.Float64)
    scale = f"a number from {lo:g} to {hi:g}" if ratings else "a finite number"
    off_scale = rating.is_not_null() & ~(rating.is_finite() & rating.is_between(lo, hi))
    frame = drop_where(frame, path, bad, "rating_out_of_range", off_scale, f"a rating must be {scale}")
    return bad.require_rows(frame, path, "interactions")


def positive_ids(frame: pl.DataFrame, path: Path, bad: BadLines, columns: tuple[str, ...]) -> pl.DataFrame:
    """Rows whose integer id `columns` are all >= 1 (formats with numeric ids number them from 1)."""
    failed = pl.any_horizontal(pl.col(c) < 1 for c in columns)
    return drop_where(frame, path, bad, "bad_id", failed, f"{', '.join(columns)} must be integers >= 1")


def first_of_each(frame: pl.DataFrame, path: Path, bad: BadLines, column: str, reason: str) -> pl.DataFrame:
    """The first row of each `column` value; every repeat is a bad line (`reason`), named by file and line."""
    return drop_where(frame, path, bad, reason, pl.int_range(pl.len()).over(column) > 0, "the first line is kept")


def _usable_id(column: str) -> pl.Expr:
    text = pl.col(column).cast(pl.String)
    return text.is_not_null() & (text.str.strip_chars() != "") & ~text.str.contains(CONTROL)
