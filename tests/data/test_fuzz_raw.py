"""Fuzzed raw files in every format end in a prepared dataset or a one-line `UserError`, never a traceback.

Each format starts from a valid fixture in its real published layout; one file is damaged (cut, random bytes,
wrong encoding, odd numbers, fields dropped or repeated, a gzip stream cut off) or some of its lines are broken
in a way the loader must report. `prepare_dataset` then runs under both `prepare.on_bad_line` policies.
Raise `UR4REC_FUZZ_EXAMPLES` to search harder than the quick default.
"""

from __future__ import annotations

import csv
import gzip
import json
import math
import os
import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.data.helpers import prepare_fixture
from tests.fixtures import mutations as mut
from tests.fixtures.raw import write_ml100k
from tests.fixtures.raw_formats import write_amazon, write_generic, write_ml1m, write_steam
from ur4rec.errors import UserError

EXAMPLES = int(os.environ.get("UR4REC_FUZZ_EXAMPLES", "5"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
NAN = float("nan")


@dataclass(frozen=True)
class RawFile:
    """One file of a fixture, and how to break one of its lines so that a loader must report it."""

    name: str
    role: str  # interactions | items | users
    layout: str  # delimited | csv | records | parquet
    sep: bytes = b""
    encoding: str = "utf-8"
    drop: str | None = None  # records: a key no line can do without
    values: tuple[tuple[Any, Any], ...] = ()  # (field index, column or key; a value the loader must refuse)
    unique: bool = False  # a line repeating an earlier line's id is bad (a catalogue or profile table)

    def line_breaks(self, number: int) -> list[str]:
        """The ways `break_lines` can break line (or row) `number` of this file."""
        kinds = ["value"] if self.layout == "parquet" else ["garbage", "bytes"]
        if self.layout in ("delimited", "csv"):
            kinds += ["drop", "extra"]
        kinds += ["drop"] if self.drop else []
        kinds += ["value"] if self.values and self.layout != "parquet" else []
        return kinds + (["duplicate"] if self.unique and number > self.first else [])

    @property
    def first(self) -> int:
        return 2 if self.layout == "csv" else 1  # a CSV header is no record


@dataclass(frozen=True)
class Variant:
    """A dataset folder in one raw format."""

    name: str
    fmt: str
    write: Callable[[Path], Path]
    files: tuple[RawFile, ...]
    category: str | None = None


def _gzip_reviews(root: Path) -> Path:
    write_amazon(root)
    plain = root / "Tiny_Things_5.json"
    (root / "Tiny_Things_5.json.gz").write_bytes(gzip.compress(plain.read_bytes()))
    plain.unlink()
    return root


ML_RATINGS = ((0, b"-3"), (1, b"0"), (2, b"nan"), (2, b"7"), (3, b"99999999999"), (3, b"99999999999999999999"),
              (3, b"-5"))
STEAM_GAMES = RawFile("steam_games.json.gz", "items", "records")
VARIANTS = [
    Variant("ml-100k", "ml-100k", lambda r: write_ml100k(r, n_users=30, n_items=50, per_user=12), (
        RawFile("u.data", "interactions", "delimited", b"\t", "iso-8859-1", values=ML_RATINGS),
        RawFile("u.item", "items", "delimited", b"|", "iso-8859-1", values=((0, b"-1"), (5, b"0,9"), (23, b"2")),
                unique=True),
        RawFile("u.user", "users", "delimited", b"|", "iso-8859-1", values=((0, b"-1"), (1, b"abc"), (2, b"X")),
                unique=True),
    )),
    Variant("ml-1m", "ml-1m", write_ml1m, (
        RawFile("ratings.dat", "interactions", "delimited", b"::", "iso-8859-1", values=ML_RATINGS),
        RawFile("movies.dat", "items", "delimited", b"::", "iso-8859-1", values=((0, b"0"), (1, b"")), unique=True),
        RawFile("users.dat", "users", "delimited", b"::", "iso-8859-1",
                values=((0, b"x"), (1, b"Q"), (2, b"99"), (3, b"77")), unique=True),
    )),
    Variant("ml-1m-gz", "ml-1m", lambda r: write_ml1m(r, gzipped=True), (
        RawFile("ratings.dat.gz", "interactions", "delimited", b"::", "iso-8859-1", values=ML_RATINGS),
    )),
    Variant("amazon", "amazon2018", write_amazon, (
        RawFile("Tiny_Things_5.json", "interactions", "records", drop="reviewerID", values=(
            ("overall", NAN), ("overall", 7.0), ("unixReviewTime", 10**11), ("unixReviewTime", 10**20),
            ("unixReviewTime", -1), ("reviewerID", ["x"]), ("asin", ""), ("overall", "five"),
            ("reviewerID", "\ud83dA"))),
        RawFile("meta_Tiny_Things.json.gz", "items", "records", drop="asin", values=(("asin", ""), ("asin", {"a": 1}))),
    ), category="Tiny_Things"),
    Variant("amazon-gz", "amazon2018", _gzip_reviews, (
        RawFile("Tiny_Things_5.json.gz", "interactions", "records", drop="asin", values=(("unixReviewTime", "soon"),)),
    ), category="Tiny_Things"),
    Variant("steam-csv", "steam", write_steam, (
        STEAM_GAMES,
        RawFile("australian_user_reviews_derived.csv", "interactions", "csv", values=(
            ("Date", "2999-01-01"), ("Date", "yesterday"), ("Recommend", "maybe"), ("User_Id", ""))),
    )),
    Variant("steam-australian", "steam", lambda r: write_steam(r, reviews="australian"), (
        RawFile("australian_user_reviews.json.gz", "interactions", "records", drop="user_id",
                values=(("reviews", "oops"), ("reviews", [1, 2]))),
    )),
    Variant("steam-reviews", "steam", lambda r: write_steam(r, reviews="steam_reviews"), (
        RawFile("steam_reviews.json.gz", "interactions", "records", drop="product_id",
                values=(("date", "2999-01-01"), ("date", "13/01/2011"), ("product_id", ["x"]))),
    )),
    Variant("generic-csv", "generic", lambda r: write_generic(r, users=True), (
        RawFile("interactions.csv", "interactions", "csv", values=(
            ("rating", "NaN"), ("rating", "-inf"), ("timestamp", "99999999999999"), ("timestamp", "soon"),
            ("user_id", ""), ("item_id", " "))),
        RawFile("items.csv", "items", "csv", values=(("title", ""), ("item_id", "")), unique=True),
        RawFile("users.csv", "users", "csv", values=(("user_id", ""),), unique=True),
    )),
    Variant("generic-parquet", "generic", lambda r: write_generic(r, parquet=True, users=True), (
        RawFile("interactions.parquet", "interactions", "parquet", values=(
            ("timestamp", 10**15), ("timestamp", -10), ("rating", NAN), ("user_id", None), ("item_id", "a\nb"))),
        RawFile("items.parquet", "items", "parquet", values=(("title", None),), unique=True),
        RawFile("users.parquet", "users", "parquet", values=(("user_id", None),), unique=True),
    )),
]
CASES = {f"{v.name}/{f.name}": (v, f) for v in VARIANTS for f in v.files}


# ---------------------------------------------------------------- running prepare under the contract


class Pristine(dict):
    def __repr__(self) -> str:  # hypothesis prints fixtures with a failing example
        return "pristine"


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> dict[str, tuple[Path, dict]]:
    """Each variant written once, with the stats of preparing it untouched."""
    root = tmp_path_factory.mktemp("pristine")
    out = Pristine()
    for variant in VARIANTS:
        raw = variant.write(root / variant.name)
        out[variant.name] = raw, prepare(variant, raw, "error", root / f"{variant.name}-out")
    return out


def prepare(variant: Variant, raw: Path, policy: str, out: Path) -> dict | UserError:
    """Stats of a prepared dataset, or the UserError it ended in, checked against the contract: one line,
    naming a file of the dataset (or the dataset, for what no single file causes). Any other exception
    propagates and fails the test."""
    try:
        prepare_fixture(raw, out, variant.fmt, f"prepare.on_bad_line={policy}", category=variant.category)
        return json.loads((out / "stats.json").read_text())  # what a user reads, skip counts included
    except UserError as exc:
        message = str(exc)
        assert message.strip() and "\n" not in message and "\r" not in message, f"not one line: {message!r}"
        names = [p.name for p in raw.iterdir()]
        assert any(name in message for name in names) or message.startswith("dataset 'fx'"), message
        return exc


@dataclass
class Damaged:
    """A fixture copy with one file rewritten; `broken` are the 1-based lines (or rows) known to be bad."""

    variant: Variant
    file: RawFile
    raw: Path
    broken: list[int] = field(default_factory=list)

    def run(self, policy: str) -> dict | UserError:
        return prepare(self.variant, self.raw, policy, self.raw.parent / f"out-{policy}")


def copy_of(pristine, variant: Variant, workdir: Path) -> Path:
    """A fresh copy of a variant's files; the previous example's copy and outputs are removed first."""
    for old in workdir.iterdir():
        if old.is_dir():
            shutil.rmtree(old)
        else:
            old.unlink()
    target = workdir / "raw"
    shutil.copytree(pristine[variant.name][0], target)
    return target


# ---------------------------------------------------------------- any damage


@FUZZ
@given(case=st.sampled_from(sorted(CASES)), data=st.data(), rnd=st.randoms(use_true_random=False))
def test_any_damage_ends_in_a_result_or_a_one_line_error(pristine, tmp_path, case, data, rnd):
    variant, raw_file = CASES[case]
    raw = copy_of(pristine, variant, tmp_path)
    path = raw / raw_file.name
    payload = path.read_bytes()
    if raw_file.name.endswith(".gz") and data.draw(st.booleans(), label="cut the gzip stream"):
        payload = payload[: rnd.randrange(len(payload))]  # as an interrupted download leaves it
    else:
        kinds = mut.BINARY if raw_file.layout == "parquet" else sorted(mut.DAMAGE)
        text = mut.gunzip_if(raw_file.name, payload)
        for name in data.draw(st.lists(st.sampled_from(kinds), min_size=1, max_size=3), label="damage"):
            text = mut.DAMAGE[name](text, rnd, raw_file.encoding)
        payload = mut.gzip_if(raw_file.name, text)
    path.write_bytes(payload)
    for policy in ("error", "skip"):
        Damaged(variant, raw_file, raw).run(policy)


# ---------------------------------------------------------------- known bad lines


def break_lines(raw_file: RawFile, data: bytes, lines: list[int], rnd: random.Random) -> bytes:
    """`data` with each of `lines` (1-based, records only) broken by one of the file's line breaks."""
    text = mut.gunzip_if(raw_file.name, data)
    rows = text.split(b"\n")
    header = next(csv.reader([rows[0].decode()])) if raw_file.layout == "csv" else []
    for number in lines:
        how = rnd.choice(raw_file.line_breaks(number))
        value = rnd.choice(raw_file.values) if how == "value" else None
        line = rows[number - 1]
        if how == "duplicate":  # a copy of an earlier line: that line comes first, this one repeats it
            rows[number - 1] = rows[rnd.randrange(raw_file.first, number) - 1]
        elif raw_file.layout == "delimited":
            rows[number - 1] = mut.break_delimited(line, how, raw_file.sep, value)
        elif raw_file.layout == "csv":
            rows[number - 1] = mut.break_csv(line, how, header, value)
        else:
            rows[number - 1] = mut.break_record(line, how, raw_file.drop, value)
    return mut.gzip_if(raw_file.name, b"\n".join(rows))


def break_rows(path: Path, rows: list[int], raw_file: RawFile, rnd: random.Random) -> None:
    """Parquet: each of `rows` (1-based) given a value the loader must refuse, or made a copy of an earlier row."""
    frame = pl.read_parquet(path)
    for number in rows:
        if rnd.choice(raw_file.line_breaks(number)) == "duplicate":
            earlier = rnd.randrange(1, number)
            frame = pl.concat([frame[: number - 1], frame[earlier - 1 : earlier], frame[number:]])
            continue
        column, value = rnd.choice(raw_file.values)
        at = pl.int_range(pl.len()) == number - 1
        frame = frame.with_columns(pl.when(at).then(pl.lit(value, dtype=frame.schema[column]))
                                   .otherwise(pl.col(column)).alias(column))
    frame.write_parquet(path)


def n_records(raw_file: RawFile, path: Path) -> int:
    if raw_file.layout == "parquet":
        return pl.read_parquet(path).height
    return len(mut.gunzip_if(raw_file.name, path.read_bytes()).rstrip(b"\n").split(b"\n"))


@FUZZ
@given(case=st.sampled_from(sorted(CASES)), data=st.data(), rnd=st.randoms(use_true_random=False))
def test_bad_lines_are_named_or_skipped_and_counted(pristine, tmp_path, case, data, rnd):
    variant, raw_file = CASES[case]
    raw = copy_of(pristine, variant, tmp_path)
    path = raw / raw_file.name
    lines = data.draw(st.sets(st.integers(raw_file.first, n_records(raw_file, path)), min_size=1, max_size=3),
                      label="lines")
    if raw_file.layout == "parquet":
        break_rows(path, sorted(lines), raw_file, rnd)
    else:
        path.write_bytes(break_lines(raw_file, path.read_bytes(), sorted(lines), rnd))

    damaged = Damaged(variant, raw_file, raw, sorted(lines))
    error = damaged.run("error")
    assert isinstance(error, UserError), "a bad line was accepted silently"
    assert any(f"{raw_file.name}:{n}:" in str(error) for n in lines), str(error)

    stats = damaged.run("skip")
    assert isinstance(stats, dict), f"skip policy failed: {stats}"
    counts = dict(stats["skipped_lines"])
    if raw_file.role == "items":
        counts.pop("unknown_item", None)  # interactions of a skipped item follow it out, counted apart
    assert sum(counts.values()) == len(lines), (stats["skipped_lines"], stats["skipped_examples"])


# ---------------------------------------------------------------- neutral edits


@pytest.mark.parametrize("variant", [v for v in VARIANTS if v.files[0].layout != "parquet"], ids=lambda v: v.name)
def test_blank_lines_and_line_ends_change_nothing(pristine, tmp_path, variant):
    raw = copy_of(pristine, variant, tmp_path)
    rnd = random.Random(0)
    for raw_file in variant.files:
        path = raw / raw_file.name
        text = mut.gunzip_if(path.name, path.read_bytes())
        for edit in mut.NEUTRAL.values():
            text = edit(text, rnd, raw_file.encoding)
        path.write_bytes(mut.gzip_if(path.name, text))
    stats = Damaged(variant, variant.files[0], raw).run("error")
    expected = pristine[variant.name][1]
    assert isinstance(stats, dict), stats
    for key in ("users", "items", "interactions", "samples", "skipped_lines", "loader"):
        assert stats[key] == expected[key], key


def test_the_pristine_fixtures_prepare_cleanly(pristine):
    for variant in VARIANTS:
        stats = pristine[variant.name][1]
        assert isinstance(stats, dict) and stats["skipped_lines"] == {} and stats["users"] == 30, variant.name
        assert not math.isnan(stats["density"])
