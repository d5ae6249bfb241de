"""Raw-file defects users met, each pinned: one line naming file and line, or skipped and counted."""

from __future__ import annotations

import gzip
import json
import re

import polars as pl
import pytest

from tests.data.helpers import prepare_fixture
from tests.fixtures.raw import write_ml100k
from tests.fixtures.raw_formats import plan, write_amazon, write_generic, write_ml1m, write_steam
from ur4rec.data.schema import DataFormatError

N_EVENTS = len(plan())


def one_line_error(raw, out, fmt, *overrides, category=None) -> str:
    with pytest.raises(DataFormatError) as caught:
        prepare_fixture(raw, out, fmt, *overrides, category=category)
    message = str(caught.value)
    assert "\n" not in message
    return message


def skipped(raw, out, fmt, category=None) -> dict[str, int]:
    return prepare_fixture(raw, out, fmt, "prepare.on_bad_line=skip", category=category)["skipped_lines"]


def edit_line(path, number: int, edit, encoding="utf-8") -> None:
    lines = path.read_text(encoding=encoding).split("\n")
    lines[number - 1] = edit(lines[number - 1])
    path.write_text("\n".join(lines), encoding=encoding)


def test_an_empty_generic_csv_is_named(tmp_path):
    raw = write_generic(tmp_path / "raw")
    (raw / "interactions.csv").write_bytes(b"")
    message = one_line_error(raw, tmp_path / "out", "generic")
    assert message.endswith("interactions.csv: empty file or blank first line; the first line must name the columns")


def test_a_csv_with_only_its_header_has_no_usable_rows(tmp_path):
    raw = write_generic(tmp_path / "raw")
    (raw / "items.csv").write_text("item_id,title\n")
    assert "items.csv: no usable items in the file" in one_line_error(raw, tmp_path / "out", "generic")


def test_a_generic_row_with_a_field_too_many_names_its_line(tmp_path):
    raw = write_generic(tmp_path / "raw")
    edit_line(raw / "interactions.csv", 4, lambda line: line + ",surplus")
    message = one_line_error(raw, tmp_path / "out", "generic")
    assert "interactions.csv:4: wrong_field_count (expected 4 fields, found 5)" in message
    assert "truncate_ragged_lines" not in message
    assert skipped(raw, tmp_path / "out", "generic") == {"wrong_field_count": 1}


def test_a_generic_row_with_a_field_too_few_is_no_longer_read_as_null(tmp_path):
    raw = write_generic(tmp_path / "raw")
    edit_line(raw / "interactions.csv", 5, lambda line: line.rsplit(",", 1)[0])  # the rating gone
    assert "interactions.csv:5: wrong_field_count (expected 4 fields, found 3)" in one_line_error(
        raw, tmp_path / "out", "generic")


def test_random_bytes_in_the_steam_csv_name_the_line(tmp_path):
    raw = write_steam(tmp_path / "raw")
    path = raw / "australian_user_reviews_derived.csv"
    lines = path.read_bytes().split(b"\n")
    lines[6] = lines[6][:3] + b"\xff\xfe\x80" + lines[6][3:]
    path.write_bytes(b"\n".join(lines))
    assert "australian_user_reviews_derived.csv:7: bad_encoding (not UTF-8)" in one_line_error(
        raw, tmp_path / "out", "steam")
    assert skipped(raw, tmp_path / "out", "steam") == {"bad_encoding": 1}


def test_a_quote_left_open_counts_every_line_it_swallows(tmp_path):
    raw = write_generic(tmp_path / "raw")
    last = N_EVENTS + 1  # the header is line 1
    edit_line(raw / "interactions.csv", last - 2, lambda line: '"' + line)
    message = one_line_error(raw, tmp_path / "out", "generic")
    assert f"interactions.csv:{last - 2}: wrong_field_count (expected 4 fields, found 1)" in message
    assert skipped(raw, tmp_path / "out", "generic") == {"wrong_field_count": 3}  # its line and the two after


def test_a_negative_user_id_in_u_data_is_refused(tmp_path):
    raw = write_ml100k(tmp_path / "raw")
    edit_line(raw / "u.data", 4, lambda line: "-" + line, "iso-8859-1")
    assert "u.data:4: bad_id (user, item must be integers >= 1)" in one_line_error(raw, tmp_path / "out", "ml-100k")
    assert skipped(raw, tmp_path / "out", "ml-100k") == {"bad_id": 1}


def test_a_genre_flag_other_than_0_or_1_is_refused(tmp_path):
    raw = write_ml100k(tmp_path / "raw")
    edit_line(raw / "u.item", 4, lambda line: line[:-1] + "0,9", "iso-8859-1")
    assert "u.item:4: unparseable_value (the last 19 fields are genre flags, each 0 or 1)" in one_line_error(
        raw, tmp_path / "out", "ml-100k")
    counts = skipped(raw, tmp_path / "out", "ml-100k")
    assert counts["unparseable_value"] == 1 and counts["unknown_item"] > 0  # the item's ratings follow it out


@pytest.mark.parametrize("field, value, reason", [
    (2, "nan", "rating_out_of_range"), (2, "6", "rating_out_of_range"), (3, "1300000000000", "timestamp_out_of_range"),
    (3, "-1", "timestamp_out_of_range"), (1, "0", "bad_id"),
])
def test_movielens_values_no_rating_holds_are_refused(tmp_path, field, value, reason):
    raw = write_ml1m(tmp_path / "raw")

    def edit(line: str) -> str:
        fields = line.split("::")
        fields[field] = value
        return "::".join(fields)

    edit_line(raw / "ratings.dat", 2, edit, "iso-8859-1")
    assert f"ratings.dat:2: {reason}" in one_line_error(raw, tmp_path / "out", "ml-1m")
    assert skipped(raw, tmp_path / "out", "ml-1m") == {reason: 1}


def test_ml1m_user_codes_outside_the_readme_are_refused(tmp_path):
    raw = write_ml1m(tmp_path / "raw")
    edit_line(raw / "users.dat", 3, lambda line: line.split("::")[0] + "::M::33::4::12345",  # no age code 33
              "iso-8859-1")
    assert "users.dat:3: unparseable_value" in one_line_error(raw, tmp_path / "out", "ml-1m")


def test_milliseconds_for_seconds_are_refused(tmp_path):
    raw = write_generic(tmp_path / "raw", parquet=True)
    inter = pl.read_parquet(raw / "interactions.parquet")
    inter.with_columns(pl.col("timestamp") * 1000).write_parquet(raw / "interactions.parquet")
    message = one_line_error(raw, tmp_path / "out", "generic")
    assert "interactions.parquet:1: timestamp_out_of_range" in message and f"{N_EVENTS - 1} more like it" in message


def test_a_gzip_stream_cut_off_is_named(tmp_path):
    raw = write_ml1m(tmp_path / "raw", gzipped=True)
    path = raw / "ratings.dat.gz"
    path.write_bytes(path.read_bytes()[:-20])
    message = one_line_error(raw, tmp_path / "out", "ml-1m", "prepare.on_bad_line=skip")
    assert message.endswith("ratings.dat.gz: not a whole gzip stream (Compressed file ended before the end-of-stream "
                            "marker was reached); the file is cut short or corrupt, fetch it again")


def test_utf16_text_is_named_as_such(tmp_path):
    raw = write_ml100k(tmp_path / "raw")
    path = raw / "u.data"
    path.write_bytes(path.read_text(encoding="iso-8859-1").encode("utf-16"))
    assert one_line_error(raw, tmp_path / "out", "ml-100k").endswith(
        "u.data: UTF-16 text; save it as UTF-8 (or the format's own encoding) and rerun")


def test_a_file_whose_every_line_is_bad_is_named_under_skip(tmp_path):
    raw = write_amazon(tmp_path / "raw")
    (raw / "Tiny_Things_5.json").write_text("not json\n" * 5)
    message = one_line_error(raw, tmp_path / "out", "amazon2018", "prepare.on_bad_line=skip", category="Tiny_Things")
    assert ("Tiny_Things_5.json: no usable interactions in the file; lines skipped so far: {'malformed_line': 5}"
            in message)


def test_an_amazon_id_that_is_not_text_is_refused_on_both_paths(tmp_path):
    raw = write_amazon(tmp_path / "raw")
    path = raw / "Tiny_Things_5.json"
    edit_line(path, 2, lambda line: json.dumps({**json.loads(line), "asin": ["B000000001"]}))
    assert "Tiny_Things_5.json:2: malformed_line" in one_line_error(
        raw, tmp_path / "out", "amazon2018", category="Tiny_Things")


def test_half_a_surrogate_pair_is_replaced_in_text_and_refused_in_an_id(tmp_path):
    raw = write_amazon(tmp_path / "raw")
    meta = raw / "meta_Tiny_Things.json.gz"
    text = gzip.decompress(meta.read_bytes()).decode()
    text = text.replace('"title": "Thing', '"title": "\\ud83d Thing').replace('"Brand', '"\\udc80Brand')
    meta.write_bytes(gzip.compress(text.encode()))
    prepare_fixture(raw, tmp_path / "out", "amazon2018", category="Tiny_Things")
    items = pl.read_parquet(tmp_path / "out" / "items.parquet").filter(pl.col("title").str.starts_with("\ufffd Thing"))
    assert items.height > 10
    assert all(json.loads(a)["brand"].startswith("\ufffdBrand") for a in items["attributes"])
    edit_line(raw / "Tiny_Things_5.json", 3, lambda line: line.replace('"reviewerID": "', '"reviewerID": "\\ud83d'))
    # polars reads the escape as a NUL (a control character: bad_id); Python's json as a surrogate (malformed_line)
    message = one_line_error(raw, tmp_path / "out", "amazon2018", category="Tiny_Things")
    assert re.search(r"Tiny_Things_5\.json:3: (bad_id|malformed_line) ", message), message


def test_a_repeated_item_or_user_id_names_the_repeating_row(tmp_path):
    raw = write_generic(tmp_path / "raw", parquet=True)
    items = pl.read_parquet(raw / "items.parquet")
    pl.concat([items, items[2:3]]).write_parquet(raw / "items.parquet")  # sku-3 again, as row 51
    assert "items.parquet:51: duplicate_item_id (the first line is kept)" in one_line_error(
        raw, tmp_path / "out", "generic")
    raw = write_ml1m(tmp_path / "ml")
    with open(raw / "users.dat", "a", encoding="iso-8859-1") as fh:
        fh.write("4::F::25::3::55555\n")
    assert skipped(raw, tmp_path / "out", "ml-1m") == {"duplicate_user_id": 1}


def test_a_corrupt_generic_parquet_is_named(tmp_path):
    raw = write_generic(tmp_path / "raw", parquet=True)
    path = raw / "items.parquet"
    path.write_bytes(path.read_bytes()[:-30])
    assert "items.parquet: not a readable Parquet file (" in one_line_error(raw, tmp_path / "out", "generic")


def test_a_generic_parquet_column_of_the_wrong_type_is_named(tmp_path):
    raw = write_generic(tmp_path / "raw", parquet=True)
    inter = pl.read_parquet(raw / "interactions.parquet")
    inter.with_columns(pl.concat_list("user_id").alias("user_id")).write_parquet(raw / "interactions.parquet")
    assert one_line_error(raw, tmp_path / "out", "generic").endswith(
        "interactions.parquet: column 'user_id' has type List(String); expected text or integers")


def test_steam_reviews_that_are_not_a_list_are_a_bad_line(tmp_path):
    raw = write_steam(tmp_path / "raw", reviews="australian")
    path = raw / "australian_user_reviews.json.gz"
    lines = gzip.decompress(path.read_bytes()).decode().split("\n")
    lines[1] = "{'user_id': 'user2', 'reviews': 'none'}"
    path.write_bytes(gzip.compress("\n".join(lines).encode()))
    assert "australian_user_reviews.json.gz:2: malformed_line ('reviews' must be a list of objects)" in one_line_error(
        raw, tmp_path / "out", "steam")
