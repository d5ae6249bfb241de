"""Every raw loader on small fixtures written in its real format, and its bad-input handling."""

from __future__ import annotations

import gzip
import json

import polars as pl
import pytest

from tests.data.helpers import fixture_configs, prepare_fixture
from tests.fixtures.raw import write_ml100k
from tests.fixtures.raw_formats import asin, plan, write_amazon, write_generic, write_ml1m, write_steam
from ur4rec.data.registry import raw_format
from ur4rec.data.schema import BadLines, DataFormatError

N_EVENTS = len(plan())


def load(fmt: str, raw, category=None, policy="error"):
    cfg, _ = fixture_configs(fmt, category=category)
    bad = BadLines(policy)
    return raw_format(fmt).load(raw, cfg, bad), bad


def test_ml100k_reads_ratings_items_users(tmp_path):
    raw = write_ml100k(tmp_path / "raw")
    data, _ = load("ml-100k", raw)
    assert data.interactions.height == 40 * 25
    assert data.items.height == 60 and data.users.height == 40
    first = data.items.filter(pl.col("raw_id") == "1").row(0, named=True)
    assert first["title"] == 'The "Great" Escape (1963)'  # TITLES[1 % 8], quotes kept
    assert json.loads(first["attributes"])["year"] == 1963
    assert 1 <= len(first["categories"]) <= 3 and "unknown" not in first["categories"]
    assert set(data.users["gender"].unique()) <= {"M", "F"}


@pytest.mark.parametrize("gzipped", [False, True])
def test_ml1m_plain_or_gzipped_latin1(tmp_path, gzipped):
    raw = write_ml1m(tmp_path / "raw", gzipped=gzipped)
    data, _ = load("ml-1m", raw)
    assert data.interactions.height == N_EVENTS
    assert data.items.filter(pl.col("raw_id") == "1")["title"].item() == "Amélie (1961)"
    assert data.items.filter(pl.col("raw_id") == "1")["categories"].item().to_list() == ["Comedy", "Children's"]
    user = data.users.filter(pl.col("raw_id") == "1").row(0, named=True)
    assert (user["gender"], user["age"], user["occupation"]) == ("F", "18-24", "academic/educator")


def test_ml1m_malformed_line_names_file_and_line(tmp_path):
    raw = write_ml1m(tmp_path / "raw")
    lines = (raw / "ratings.dat").read_text(encoding="iso-8859-1").splitlines()
    lines[4] = "3::17::five::1300000000"
    lines[6] = "3::17"
    (raw / "ratings.dat").write_text("\n".join(lines) + "\n", encoding="iso-8859-1")
    with pytest.raises(DataFormatError, match=r"ratings\.dat:7: wrong_field_count"):
        load("ml-1m", raw)
    data, bad = load("ml-1m", raw, policy="skip")
    assert data.interactions.height == N_EVENTS - 2
    assert bad.counts == {"wrong_field_count": 1, "unparseable_value": 1}
    assert "ratings.dat:5" in bad.examples["unparseable_value"]


def test_unknown_item_is_bad_input_for_a_complete_catalogue(tmp_path):
    raw = write_ml1m(tmp_path / "raw")
    with open(raw / "ratings.dat", "a", encoding="iso-8859-1") as fh:
        fh.write("1::999::4::1300000001\n")
    with pytest.raises(DataFormatError, match=rf"ratings\.dat:{N_EVENTS + 1}: unknown_item"):
        prepare_fixture(raw, tmp_path / "out", "ml-1m")
    stats = prepare_fixture(raw, tmp_path / "out", "ml-1m", "prepare.on_bad_line=skip")
    assert stats["skipped_lines"] == {"unknown_item": 1}


def test_bad_encoding_names_the_line(tmp_path):
    raw = write_amazon(tmp_path / "raw")
    path = raw / "Tiny_Things_5.json"
    path.write_bytes(path.read_bytes() + b'{"reviewerID": "A\xff", "asin": "B1"}\n')
    with pytest.raises(DataFormatError, match=rf"Tiny_Things_5\.json:{N_EVENTS + 1}: bad_encoding"):
        load("amazon2018", raw, category="Tiny_Things")


def test_amazon_titles_are_cleaned_merged_and_fall_back(tmp_path):
    raw = write_amazon(tmp_path / "raw")
    data, _ = load("amazon2018", raw, category="Tiny_Things")
    assert data.interactions.height == N_EVENTS
    assert not data.items_complete
    titles = dict(data.items.select("raw_id", "title").iter_rows())
    assert titles[asin(1)] == "Real Title One"  # junk first row, real title in the repeated asin
    assert titles[asin(2)] == "Brand2 (Sub & Part)"  # no title: brand with the most specific category
    assert titles[asin(3)] == asin(3)  # nothing usable
    assert titles[asin(5)] == "Thing 5 & Co"
    assert data.items.filter(pl.col("raw_id") == asin(5))["categories"].item().to_list() == ["Tiny_Things", "Sub & Part"]
    assert data.notes == {"duplicate_meta_rows": 1, "meta_title_from_brand": 1, "meta_title_from_raw_id": 1}
    assert not any("<" in t or "&amp;" in t for t in titles.values())


def test_amazon_malformed_json_line_is_named_or_skipped(tmp_path):
    raw = write_amazon(tmp_path / "raw")
    path = raw / "Tiny_Things_5.json"
    lines = path.read_text().splitlines()
    lines[2] = lines[2][:-10]
    lines[3] = json.dumps({"asin": "B1", "overall": 5.0, "unixReviewTime": 1})  # no reviewerID
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataFormatError, match=r"Tiny_Things_5\.json:3: malformed_line"):
        load("amazon2018", raw, category="Tiny_Things")
    data, bad = load("amazon2018", raw, category="Tiny_Things", policy="skip")
    assert bad.counts == {"malformed_line": 1, "missing_field": 1}
    assert data.interactions.height == N_EVENTS - 2


def test_amazon_prepare_counts_fallback_titles_and_unlisted_items(tmp_path):
    raw = write_amazon(tmp_path / "raw")
    stats = prepare_fixture(raw, tmp_path / "out", "amazon2018", category="Tiny_Things")
    items = pl.read_parquet(tmp_path / "out" / "items.parquet")
    assert stats["filtering"]["items_without_metadata"] == 1  # the last item has no metadata row
    last = items.filter(pl.col("raw_id") == asin(50))
    assert last["title"].item() == asin(50) and json.loads(last["attributes"].item()) == {"title_from": "raw_id"}
    fallback = items.filter(pl.col("attributes").str.contains("title_from")).height
    assert stats["filtering"]["items_with_fallback_title"] == fallback >= 1


@pytest.mark.parametrize("style", ["csv", "australian", "steam_reviews"])
def test_steam_games_and_every_review_style(tmp_path, style):
    raw = write_steam(tmp_path / "raw", reviews=style)
    data, _ = load("steam", raw)
    assert data.interactions.height == N_EVENTS
    assert data.notes.get("games_without_id") == 1
    game = data.items.filter(pl.col("raw_id") == "1001").row(0, named=True)
    assert game["title"] == "Game 1 – ünïcode" and game["categories"] == ["Action", "Indie"]
    assert json.loads(game["attributes"])["developer"] == "Valve"
    events = {(f"user{e.user}", str(1000 + e.item)): e for e in plan()}
    for user, item, ts, rating in data.interactions.select("user", "item", "timestamp", "rating").iter_rows():
        e = events[(user, item)]
        assert ts == e.time - e.time % 86_400  # a day, at UTC midnight
        assert rating == (None if style == "steam_reviews" else float(e.rating > 2))


def test_steam_recommend_threshold_keeps_recommended_only(tmp_path):
    raw = write_steam(tmp_path / "raw", reviews="csv", per_user=20)
    prepare_fixture(raw, tmp_path / "out", "steam", "dataset.fx.min_rating=1", "dataset.fx.k_core=2")
    inter = pl.read_parquet(tmp_path / "out" / "interactions.parquet")
    assert inter["rating"].unique().to_list() == [1.0]


def test_steam_australian_review_without_year_gets_2016(tmp_path):
    raw = write_steam(tmp_path / "raw", reviews="australian")
    path = raw / "australian_user_reviews.json.gz"
    text = gzip.decompress(path.read_bytes()).decode()
    first = text.index("Posted ")
    end = text.index(".", first)
    text = text[:first] + "Posted July 15" + text[end:]
    path.write_bytes(gzip.compress(text.encode()))
    data, _ = load("steam", raw)
    assert data.notes["reviews_without_year"] == 1
    assert data.interactions["timestamp"].is_in([1468540800]).sum() == 1  # 2016-07-15 UTC


@pytest.mark.parametrize("parquet", [False, True])
def test_generic_csv_or_parquet(tmp_path, parquet):
    raw = write_generic(tmp_path / "raw", parquet=parquet)
    data, _ = load("generic", raw)
    assert data.interactions.height == N_EVENTS
    times = {e.time for e in plan()}
    assert set(data.interactions["timestamp"].to_list()) == times
    item = data.items.filter(pl.col("raw_id") == "sku-1").row(0, named=True)
    assert item["categories"] == ["tools", "garden"] and json.loads(item["attributes"]) == {"colour": "red"}


def test_generic_missing_title_and_bad_timestamp(tmp_path):
    raw = write_generic(tmp_path / "raw")
    items = pl.read_csv(raw / "items.csv").with_columns(
        pl.when(pl.col("item_id") == "sku-4").then(pl.lit(None)).otherwise(pl.col("title")).alias("title")
    )
    items.write_csv(raw / "items.csv")
    with pytest.raises(DataFormatError, match=r"items\.csv:5: missing_title"):
        load("generic", raw)
    lines = (raw / "interactions.csv").read_text().splitlines()
    lines[3] = "u1,sku-2,yesterday,3.0"
    (raw / "interactions.csv").write_text("\n".join(lines) + "\n")
    _, bad = load("generic", raw, policy="skip")
    assert bad.counts == {"missing_title": 1, "unparseable_value": 1}
    assert "interactions.csv:4" in bad.examples["unparseable_value"]


def test_generic_missing_column_is_named(tmp_path):
    raw = write_generic(tmp_path / "raw")
    pl.read_csv(raw / "interactions.csv").drop("timestamp").write_csv(raw / "interactions.csv")
    with pytest.raises(DataFormatError, match=r"interactions\.csv: missing column\(s\) \['timestamp'\]"):
        load("generic", raw)


@pytest.mark.parametrize(
    "fmt, writer, category",
    [("ml-1m", write_ml1m, None), ("amazon2018", write_amazon, "Tiny_Things"), ("steam", write_steam, None),
     ("generic", write_generic, None)],
)
def test_every_format_prepares_end_to_end(tmp_path, fmt, writer, category):
    raw = writer(tmp_path / "raw", **({"category": category} if category else {}))
    stats = prepare_fixture(raw, tmp_path / "out", fmt, "prepare.llm_history_len=3", category=category)
    test = pl.read_parquet(tmp_path / "out" / "test.parquet")
    assert stats["users"] == 30 and test["user_id"].n_unique() == 3 and stats["samples"]["test"] == test.height
    assert set(test["candidates"].list.len().to_list()) == {20}
