"""MovieLens loaders: ML-100K (`u.data`, `u.item`, `u.user`) and ML-1M (`ratings.dat[.gz]`, `movies.dat`,
`users.dat`, `::` separated). Both are ISO-8859-1 text as GroupLens publishes them."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from ur4rec.data.checks import drop_where, first_of_each, positive_ids, valid_interactions
from ur4rec.data.lines import LINE, cast_checked, read_lines, source, split_fields
from ur4rec.data.schema import BadLines, RawDataset, attributes_json

ENCODING = "iso-8859-1"
ML100K_GENRES = [
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
]
# ML-1M encodes age and occupation as codes (see its README); prompts need the words.
ML1M_AGES = {"1": "under 18", "18": "18-24", "25": "25-34", "35": "35-44", "45": "45-49", "50": "50-55", "56": "56+"}
ML1M_OCCUPATIONS = [
    "other", "academic/educator", "artist", "clerical/admin", "college/grad student", "customer service",
    "doctor/health care", "executive/managerial", "farmer", "homemaker", "K-12 student", "lawyer", "programmer",
    "retired", "sales/marketing", "scientist", "self-employed", "technician/engineer", "tradesman/craftsman",
    "unemployed", "writer",
]
YEAR_IN_TITLE = r"\((\d{4})\)\s*$"
RATINGS = (1.0, 5.0)  # stars
GENDERS = ("M", "F")


def first_existing(raw_dir: Path, *names: str) -> Path:
    """The first of `names` present in `raw_dir` (e.g. plain or gzipped), else the first name (for the error)."""
    for name in names:
        if (raw_dir / name).exists():
            return raw_dir / name
    return raw_dir / names[0]


def _interactions(path: Path, sep: str, bad: BadLines) -> pl.DataFrame:
    """`user sep item sep rating sep timestamp` lines, shared by both MovieLens sizes."""
    fields = split_fields(read_lines(path, bad, ENCODING), path, sep, ["user", "item", "rating", "timestamp"], bad)
    fields = cast_checked(fields, path, {"user": pl.Int64, "item": pl.Int64, "rating": pl.Float64, "timestamp": pl.Int64}, bad)
    fields = positive_ids(fields, path, bad, ("user", "item"))
    frame = fields.select(
        pl.col("user").cast(pl.String), pl.col("item").cast(pl.String), "timestamp", "rating", *source(path)
    )
    return valid_interactions(frame, path, bad, RATINGS)


def _items(fields: pl.DataFrame, path: Path, bad: BadLines, genres: pl.Expr, extra: dict[str, pl.Expr]) -> pl.DataFrame:
    fields = cast_checked(fields, path, {"item": pl.Int64}, bad, required=("title",))
    fields = first_of_each(positive_ids(fields, path, bad, ("item",)), path, bad, "item", "duplicate_item_id")
    frame = fields.select(
        pl.col("item").cast(pl.String).alias("raw_id"),
        pl.col("title").str.strip_chars(),
        genres.alias("categories"),
        pl.col("title").str.extract(YEAR_IN_TITLE, 1).cast(pl.Int64, strict=False).alias("year"),
        **extra,
    )
    attrs = [c for c in frame.columns if c not in ("raw_id", "title", "categories")]
    items = frame.with_columns(
        pl.struct(attrs).map_elements(attributes_json, return_dtype=pl.String).alias("attributes")
    ).select("raw_id", "title", "categories", "attributes")
    return bad.require_rows(items, path, "items")


def _users(fields: pl.DataFrame, path: Path, bad: BadLines, valid: pl.Expr, detail: str) -> pl.DataFrame:
    """Profiles with a positive integer id and fields `valid` holds for; a repeated id keeps the first line."""
    fields = fields.with_columns(pl.col(c).str.strip_chars() for c in fields.columns if c != LINE)
    fields = drop_where(fields, path, bad, "bad_id", pl.col("raw_id").cast(pl.Int64, strict=False) < 1,
                        "user ids must be integers >= 1")
    fields = drop_where(fields, path, bad, "unparseable_value", ~valid, detail)
    return bad.require_rows(first_of_each(fields, path, bad, "raw_id", "duplicate_user_id"), path, "users")


def load_ml100k(raw_dir: Path, bad: BadLines) -> RawDataset:
    """MovieLens-100K: `u.data` (tab separated), `u.item` (`|`, 19 genre flags), `u.user`."""
    inter = _interactions(raw_dir / "u.data", "\t", bad)
    path = raw_dir / "u.item"
    names = ["item", "title", "release_date", "video_date", "url", *[f"g{k}" for k in range(len(ML100K_GENRES))]]
    fields = split_fields(read_lines(path, bad, ENCODING), path, "|", names, bad)
    fields = drop_where(fields, path, bad, "unparseable_value",
                        ~pl.all_horizontal(pl.col(f"g{k}").is_in(["0", "1"]) for k in range(len(ML100K_GENRES))),
                        f"the last {len(ML100K_GENRES)} fields are genre flags, each 0 or 1")
    flags = pl.concat_list(
        pl.when(pl.col(f"g{k}") == "1").then(pl.lit(g)).otherwise(None) for k, g in enumerate(ML100K_GENRES)
    ).list.drop_nulls()
    items = _items(fields, path, bad, flags, {"release_date": pl.col("release_date")})
    path = raw_dir / "u.user"
    users = split_fields(read_lines(path, bad, ENCODING), path, "|", ["raw_id", "age", "gender", "occupation", "zip"], bad)
    age = pl.col("age").cast(pl.Int64, strict=False)
    users = _users(users, path, bad, age.is_between(1, 120) & pl.col("gender").is_in(GENDERS),
                   "age must be a whole number of years, gender M or F")
    return RawDataset(items=items, users=users.drop(LINE, "zip"), interactions=inter)


def load_ml1m(raw_dir: Path, bad: BadLines) -> RawDataset:
    """MovieLens-1M: `ratings.dat` (plain or `.gz`), `movies.dat` (genres `|`-separated), `users.dat`."""
    inter = _interactions(first_existing(raw_dir, "ratings.dat", "ratings.dat.gz"), "::", bad)
    path = first_existing(raw_dir, "movies.dat", "movies.dat.gz")
    fields = split_fields(read_lines(path, bad, ENCODING), path, "::", ["item", "title", "genres"], bad)
    genres = pl.col("genres").fill_null("").str.split("|").list.eval(pl.element().filter(pl.element() != ""))
    items = _items(fields, path, bad, genres, {})
    path = first_existing(raw_dir, "users.dat", "users.dat.gz")
    occupations = {str(k): v for k, v in enumerate(ML1M_OCCUPATIONS)}
    users = split_fields(
        read_lines(path, bad, ENCODING), path, "::", ["raw_id", "gender", "age", "occupation", "zip"], bad
    )
    valid = (pl.col("gender").is_in(GENDERS) & pl.col("age").is_in(list(ML1M_AGES))
             & pl.col("occupation").is_in(list(occupations)))
    users = _users(users, path, bad, valid, "gender must be M or F, age and occupation codes as in the ML-1M README")
    users = users.select(
        "raw_id",
        "gender",
        pl.col("age").replace_strict(ML1M_AGES).alias("age"),
        pl.col("occupation").replace_strict(occupations).alias("occupation"),
    )
    return RawDataset(items=items, users=users, interactions=inter)
