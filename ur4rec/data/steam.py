"""Steam (UCSD): `steam_games.json.gz` item metadata plus one review file, in order of preference:

- `steam_reviews.json.gz` (the paper's set; a Python dict literal per line: `username`, `product_id`, `date`),
- `australian_user_reviews.json.gz` (a dict per user: `user_id`, `reviews` [{`item_id`, `posted`, `recommend`}]),
- `australian_user_reviews_derived.csv` (`User_Id`, `Item_Id`, `Recommend`, `Year`, `Date` YYYY-MM-DD).

Ratings: `recommend`/`Recommend` becomes 1.0 (recommended) or 0.0 (not); every review is an interaction, so
`min_rating: 1` keeps only recommended games. `steam_reviews` has no such field: its rating is null (always
kept). Dates become unix seconds at UTC midnight. An Australian review posted without a year ("Posted July
15.") gets 2016, the convention of the derived CSV; such reviews are counted (`loader.reviews_without_year`).
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import polars as pl

from ur4rec.data.checks import valid_interactions
from ur4rec.data.csvfile import read_csv
from ur4rec.data.lines import LINE, cast_checked, iter_records, read_lines, source
from ur4rec.data.schema import BadLines, RawDataset, attributes_json, empty_users
from ur4rec.data.text import clean_list, clean_text, id_text, parse_record

GAMES_NAMES = ("steam_games.json.gz", "steam_games.json")
REVIEW_NAMES = ("steam_reviews.json.gz", "australian_user_reviews.json.gz", "australian_user_reviews_derived.csv")
CSV_COLUMNS = ("User_Id", "Item_Id", "Recommend", "Date")
RATINGS = (0.0, 1.0)  # not recommended, recommended
GAME_ATTRIBUTES = ("developer", "publisher", "release_date", "price", "tags", "specs")
YEAR_WITHOUT = 2016
POSTED = re.compile(r"Posted\s+([A-Za-z]+)\s+(\d{1,2})(?:,\s*(\d{4}))?", re.IGNORECASE)


def load(raw_dir: Path, bad: BadLines) -> RawDataset:
    games = next(raw_dir / n for n in GAMES_NAMES if (raw_dir / n).exists())
    items, notes = load_games(games, bad)
    reviews_path = next(raw_dir / n for n in REVIEW_NAMES if (raw_dir / n).exists())
    if reviews_path.name.endswith(".csv"):
        reviews = load_reviews_csv(reviews_path, bad)
    else:
        reviews = load_reviews_dicts(reviews_path, bad, notes)
    return RawDataset(items=items, users=empty_users(), interactions=reviews, items_complete=False, notes=dict(notes))


def load_games(path: Path, bad: BadLines) -> tuple[pl.DataFrame, Counter]:
    """Games by app id; lines without an id cannot be referenced and are counted, repeats keep the first."""
    rows: dict[str, dict[str, Any]] = {}
    notes: Counter = Counter()
    for number, record in iter_records(path, bad):
        game_id = id_text(record.get("id"))
        if not game_id:
            notes["games_without_id"] += 1
        elif game_id in rows:
            notes["duplicate_game_rows"] += 1
        else:
            rows[game_id] = _game(game_id, record, notes)
    schema = {"raw_id": pl.String, "title": pl.String, "categories": pl.List(pl.String), "attributes": pl.String}
    return bad.require_rows(pl.DataFrame(list(rows.values()), schema=schema), path, "games"), notes


def _game(game_id: str, record: dict[str, Any], notes: Counter) -> dict[str, Any]:
    title = clean_text(record.get("app_name")) or clean_text(record.get("title"))
    attrs: dict[str, Any] = {k: record.get(k) for k in GAME_ATTRIBUTES}
    attrs["tags"], attrs["specs"] = clean_list(attrs["tags"]), clean_list(attrs["specs"])
    if not title:
        title, attrs["title_from"] = game_id, "raw_id"
        notes["meta_title_from_raw_id"] += 1
    return {"raw_id": game_id, "title": title, "categories": clean_list(record.get("genres")),
            "attributes": attributes_json(attrs)}


def load_reviews_csv(path: Path, bad: BadLines) -> pl.DataFrame:
    """The derived CSV; `Recommend` is True/False, `Date` YYYY-MM-DD."""
    frame = read_csv(path, bad, CSV_COLUMNS)
    frame = frame.with_columns(
        pl.col("Recommend").str.strip_chars().str.to_lowercase().replace_strict(
            {"true": "1", "false": "0"}, default=None
        ).alias("rating"),
        pl.col("Date").str.strip_chars().str.to_date("%Y-%m-%d", strict=False).alias("date"),
    )
    bad_date = frame.filter(pl.col("date").is_null())
    bad.report_many("unparseable_value", (f"{path}:{n}" for n in bad_date[LINE]), "Date must be YYYY-MM-DD")
    frame = frame.filter(pl.col("date").is_not_null())
    frame = cast_checked(frame, path, {"rating": pl.Float64}, bad, required=("User_Id", "Item_Id", "rating"))
    frame = frame.select(
        pl.col("User_Id").str.strip_chars().alias("user"),
        pl.col("Item_Id").str.strip_chars().alias("item"),
        (pl.col("date").cast(pl.Datetime("ms", "UTC")).dt.epoch("s")).alias("timestamp"),
        "rating",
        *source(path),
    )
    return valid_interactions(frame, path, bad, RATINGS)


def load_reviews_dicts(path: Path, bad: BadLines, notes: Counter) -> pl.DataFrame:
    """Either dict-per-line review style; the Australian one nests a user's reviews in one line."""
    rows: dict[str, list[Any]] = {k: [] for k in ("user", "item", "timestamp", "rating", LINE)}
    for number, text in read_lines(path, bad).iter_rows():
        try:
            record = parse_record(text)
            reviews = list(_reviews(record, notes))
        except (ValueError, TypeError, KeyError) as exc:
            bad.report("malformed_line", f"{path}:{number}", str(exc))
            continue
        for user, item, timestamp, rating in reviews:
            for key, value in zip(("user", "item", "timestamp", "rating", LINE), (user, item, timestamp, rating, number)):
                rows[key].append(value)
    frame = pl.DataFrame(
        rows, schema={"user": pl.String, "item": pl.String, "timestamp": pl.Int64, "rating": pl.Float64, LINE: pl.Int64}
    )
    return valid_interactions(frame.with_columns(pl.lit(str(path)).alias("file")), path, bad, RATINGS)


def _reviews(record: dict[str, Any], notes: Counter):
    """(user, item, timestamp, rating) tuples of one line; a ValueError names what is wrong."""
    if "reviews" in record:  # australian_user_reviews: one user, many reviews
        user = _required(record, "user_id")
        reviews = record["reviews"] or []
        if not isinstance(reviews, list) or not all(isinstance(r, dict) for r in reviews):
            raise ValueError("'reviews' must be a list of objects")
        for review in reviews:
            timestamp = _posted(_required(review, "posted"), notes)
            yield user, _required(review, "item_id"), timestamp, _recommend(review.get("recommend"))
    else:  # steam_reviews: one review
        user = id_text(record.get("username")) or _required(record, "user_id")
        yield user, _required(record, "product_id"), _unix_day(_required(record, "date")), None


def _required(record: dict[str, Any], key: str) -> str:
    value = id_text(record.get(key))
    if not value:
        raise ValueError(f"missing {key!r} (or not text)")
    return value


def _recommend(value: Any) -> float | None:
    if value is not None and not isinstance(value, bool):
        raise ValueError(f"'recommend' must be true or false, got {value!r:.40}")
    return None if value is None else float(value)


def _unix_day(text: str) -> int:
    return int(datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=timezone.utc).timestamp())


def _posted(text: str, notes: Counter) -> int:
    """'Posted November 5, 2011.' (or without the year) -> unix seconds."""
    match = POSTED.search(text)
    if not match:
        raise ValueError(f"unreadable posted date {text!r}")
    month, day, year = match.groups()
    if year is None:
        notes["reviews_without_year"] += 1
        year = str(YEAR_WITHOUT)
    moment = datetime.strptime(f"{year} {month[:3]} {day}", "%Y %b %d").replace(tzinfo=timezone.utc)
    return int(moment.timestamp())
