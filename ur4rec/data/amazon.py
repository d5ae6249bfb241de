"""Amazon Review Data 2018 (Ni, Li & McAuley): a category's 5-core reviews plus its metadata.

Reviews: JSON lines with `reviewerID`, `asin`, `overall` (the rating) and `unixReviewTime`.
Metadata: gzipped JSON lines with `asin`, `title`, `brand`, `category`, `main_cat`, `price`. Real metadata
repeats asins and leaves HTML in titles, so rows are merged per asin (first non-empty value wins), titles are
unescaped and stripped of tags, and an item with no usable title is named after its brand (with its most
specific category), else that category, else its asin. Such items carry `title_from` in `attributes`; stats.json
counts them among kept items (`filtering.items_with_fallback_title`) and over the whole file (`loader`).
"""

from __future__ import annotations

import io
from collections import Counter
from pathlib import Path
from typing import Any

import polars as pl

from ur4rec.data.checks import valid_interactions
from ur4rec.data.lines import LINE, iter_records, read_bytes, read_lines, source
from ur4rec.data.schema import BadLines, RawDataset, attributes_json, empty_users
from ur4rec.data.text import clean_list, clean_text, id_text, parse_record

REVIEW_FIELDS = {"reviewerID": pl.String, "asin": pl.String, "overall": pl.Float64, "unixReviewTime": pl.Int64}
META_ATTRIBUTES = ("brand", "main_cat", "price", "date", "description")
DESCRIPTION_CHARS = 300  # enough for a prompt; full descriptions run to pages
RATINGS = (1.0, 5.0)  # stars


def review_names(category: str) -> tuple[str, ...]:
    return (f"{category}_5.json", f"{category}_5.json.gz")


def meta_names(category: str) -> tuple[str, ...]:
    return (f"meta_{category}.json.gz", f"meta_{category}.json")


def _first(raw_dir: Path, names: tuple[str, ...]) -> Path:
    return next((raw_dir / n for n in names if (raw_dir / n).exists()), raw_dir / names[0])


def load(raw_dir: Path, category: str, bad: BadLines) -> RawDataset:
    reviews = load_reviews(_first(raw_dir, review_names(category)), bad)
    items, notes = load_meta(_first(raw_dir, meta_names(category)), bad)
    return RawDataset(items=items, users=empty_users(), interactions=reviews, items_complete=False, notes=notes)


def load_reviews(path: Path, bad: BadLines) -> pl.DataFrame:
    """Reviews as interactions. Fast path: polars reads the JSON lines whole; any malformed line sends the
    file through the line-by-line path, which names the line."""
    try:
        frame = pl.read_ndjson(io.BytesIO(read_bytes(path)), schema=REVIEW_FIELDS).with_row_index(LINE, offset=1)
        if frame.height != _count_records(path):
            raise pl.exceptions.ComputeError("blank lines shift line numbers")
        if frame.select(pl.any_horizontal(pl.col("reviewerID", "asin").str.contains(r"^[\[{]")).any()).item():
            raise pl.exceptions.ComputeError("polars writes a list or object where an id belongs as its JSON text")
        frame = frame.with_columns(pl.col(LINE).cast(pl.Int64))
    except (pl.exceptions.PolarsError, pl.exceptions.PanicException):
        frame = _reviews_line_by_line(path, bad)
    missing = frame.filter(pl.any_horizontal(pl.col(c).is_null() for c in REVIEW_FIELDS))
    bad.report_many("missing_field", (f"{path}:{n}" for n in missing[LINE]), f"reviews need {list(REVIEW_FIELDS)}")
    frame = frame.filter(pl.all_horizontal(pl.col(c).is_not_null() for c in REVIEW_FIELDS))
    frame = frame.select(
        pl.col("reviewerID").alias("user"),
        pl.col("asin").alias("item"),
        pl.col("unixReviewTime").alias("timestamp"),
        pl.col("overall").alias("rating"),
        *source(path),
    )
    return valid_interactions(frame, path, bad, RATINGS)


def _count_records(path: Path) -> int:
    return sum(1 for line in read_bytes(path).split(b"\n") if line.strip())


def _reviews_line_by_line(path: Path, bad: BadLines) -> pl.DataFrame:
    rows: dict[str, list[Any]] = {name: [] for name in (LINE, *REVIEW_FIELDS)}
    for number, text in read_lines(path, bad).iter_rows():
        try:
            record = parse_record(text)
            values = {k: _typed(record.get(k), t) for k, t in REVIEW_FIELDS.items()}
        except (ValueError, TypeError, OverflowError) as exc:
            bad.report("malformed_line", f"{path}:{number}", str(exc))
            continue
        rows[LINE].append(number)
        for key, value in values.items():
            rows[key].append(value)
    return pl.DataFrame(rows, schema={LINE: pl.Int64, **REVIEW_FIELDS})


def _typed(value: Any, dtype: pl.DataType) -> Any:
    """A field as `dtype`, or None when absent; ValueError/TypeError/OverflowError when it cannot be one."""
    if value is None:
        return None
    if dtype == pl.String:
        text = id_text(value)
        if not text:
            raise ValueError(f"an id must be non-blank text, got {value!r:.40}")
        return text
    if isinstance(value, (bool, list, dict)):
        raise TypeError(f"expected a number, got {value!r:.40}")
    if dtype == pl.Int64:
        number = int(value)
        if not -(2**63) <= number < 2**63:
            raise OverflowError(f"{number} does not fit 64 bits")
        return number
    return float(value)


def load_meta(path: Path, bad: BadLines) -> tuple[pl.DataFrame, dict[str, int]]:
    """Items merged per asin, with cleaned titles and counted fallbacks."""
    merged: dict[str, dict[str, Any]] = {}
    notes: Counter = Counter()
    for number, record in iter_records(path, bad):
        asin = id_text(record.get("asin"))
        if not asin:
            bad.report("missing_field", f"{path}:{number}", "metadata needs an asin")
            continue
        row = _meta_row(record)
        if asin in merged:
            notes["duplicate_meta_rows"] += 1
            old = merged[asin]
            merged[asin] = {k: old[k] if old[k] else row[k] for k in row}
        else:
            merged[asin] = row
    rows = [_item(asin, row, notes) for asin, row in merged.items()]
    items = pl.DataFrame(rows, schema={"raw_id": pl.String, "title": pl.String, "categories": pl.List(pl.String),
                                       "attributes": pl.String})
    return bad.require_rows(items, path, "items"), dict(notes)


def _meta_row(record: dict[str, Any]) -> dict[str, Any]:
    row = {"title": clean_text(record.get("title")), "categories": clean_list(record.get("category"))}
    for key in META_ATTRIBUTES:
        row[key] = clean_text(record.get(key))
    description = " ".join(clean_list(record.get("description")))
    row["description"] = description[:DESCRIPTION_CHARS]
    return row


def _item(asin: str, row: dict[str, Any], notes: Counter) -> dict[str, Any]:
    title, title_from = row["title"], None
    if not title:
        specific = row["categories"][-1] if row["categories"] else ""
        if row["brand"]:
            title, title_from = f"{row['brand']} ({specific})" if specific else row["brand"], "brand"
        elif specific:
            title, title_from = specific, "category"
        else:
            title, title_from = asin, "raw_id"
        notes[f"meta_title_from_{title_from}"] += 1
    attributes = attributes_json({**{k: row[k] for k in META_ATTRIBUTES}, "title_from": title_from})
    return {"raw_id": asin, "title": title, "categories": row["categories"], "attributes": attributes}
