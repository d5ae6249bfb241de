"""The loaders on the real datasets beside the checkout (skipped when ../shared/data is absent)."""

from __future__ import annotations

import polars as pl
import pytest

from tests.conftest import shared_dataset
from tests.data.helpers import prepare_fixture

pytestmark = pytest.mark.shared_data


def test_ml100k_matches_its_published_counts(tmp_path):
    raw = shared_dataset("ml-100k")
    stats = prepare_fixture(raw, tmp_path, "ml-100k", "prepare.n_candidates=100")
    assert stats["filtering"]["raw_interactions"] == 100_000
    assert (stats["users"], stats["items"], stats["interactions"]) == (943, 1349, 99_287)  # 5-core
    test = pl.read_parquet(tmp_path / "test.parquet")
    assert test.height == 940 and test["user_id"].n_unique() == 94  # 10 lists per test user
    assert test["candidates"].list.len().unique().to_list() == [100]


def test_amazon_magazine_titles_have_no_html_left(tmp_path):
    raw = shared_dataset("amazon-2018-5core")
    stats = prepare_fixture(raw, tmp_path, "amazon2018", category="Magazine_Subscriptions")
    titles = pl.read_parquet(tmp_path / "items.parquet")["title"]
    assert not titles.str.contains(r"[<>]|&amp;|&#").any()
    assert stats["loader"]["duplicate_meta_rows"] > 0 and stats["filtering"]["items_with_fallback_title"] > 0
