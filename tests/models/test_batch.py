"""Prepared parquet -> tensors: left-padded history tails, and bad samples named by file and sample_id."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
import torch

from ur4rec.io import write_parquet
from ur4rec.train.batch import RerankData, SampleError
from ur4rec.train.catalog import read_catalog

SCHEMA = {"sample_id": pl.Int64, "user_id": pl.Int64, "target": pl.Int64, "history": pl.List(pl.Int64),
          "candidates": pl.List(pl.Int64), "target_pos": pl.Int64}


def write_split(path: Path, rows: list[dict]) -> Path:
    write_parquet(path, pl.DataFrame(rows, schema=SCHEMA))
    return path


def row(sample_id: int, history: list[int], candidates: list[int], target_pos: int, target: int | None = None):
    return {"sample_id": sample_id, "user_id": sample_id + 100, "history": history, "candidates": candidates,
            "target_pos": target_pos, "target": candidates[target_pos] if target is None else target}


def test_history_keeps_the_most_recent_items_left_padded(tmp_path):
    path = write_split(tmp_path / "s.parquet", [
        row(7, [1, 2, 3, 4, 5], [9, 8, 7], 1), row(8, [6], [3, 4, 5], 2), row(9, [], [1, 2, 3], 0),
    ])
    data = RerankData.from_parquet(path, history_len=3)
    assert data.history.tolist() == [[3, 4, 5], [0, 0, 6], [0, 0, 0]]
    assert data.candidates.tolist() == [[9, 8, 7], [3, 4, 5], [1, 2, 3]]
    batch = data.take(torch.tensor([2, 0]))
    assert batch.sample_ids.tolist() == [9, 7] and batch.target_pos.tolist() == [0, 1]
    assert batch.labels().tolist() == [[1, 0, 0], [0, 1, 0]]


def test_batches_cover_every_sample_once_in_a_seeded_order(tmp_path):
    path = write_split(tmp_path / "s.parquet", [row(i, [1], [1, 2], 0) for i in range(10)])
    data = RerankData.from_parquet(path, history_len=2)
    orders = [torch.cat([b.sample_ids for b in data.batches(3, torch.Generator().manual_seed(s))]) for s in (1, 1, 2)]
    assert sorted(orders[0].tolist()) == list(range(10))
    assert torch.equal(orders[0], orders[1]) and not torch.equal(orders[0], orders[2])
    assert [len(b) for b in data.batches(4)] == [4, 4, 2]


@pytest.mark.parametrize("bad, message", [
    (row(5, [1], [1, 2, 3], 1, target=3), "sample_id 5: candidates\\[target_pos\\] != target"),
    (row(5, [1], [1, 2, 3], 3, target=3), "sample_id 5: target_pos outside"),
    (row(5, [1], [1, 2], 0), "sample_id 5 has 2 candidates, others 3"),
    (row(5, [99], [1, 2, 3], 0), "sample_id 5: history id > n_items=10"),
    (row(5, [1], [1, 2, 30], 0), "sample_id 5: candidate id > n_items=10"),
])
def test_bad_samples_are_named(tmp_path, bad, message):
    path = write_split(tmp_path / "split.parquet", [row(4, [1], [1, 2, 3], 0), bad])
    with pytest.raises(SampleError, match=f"split.parquet: {message}"):
        RerankData.from_parquet(path, history_len=2, n_items=10)


def test_missing_split_names_the_stage(tmp_path):
    with pytest.raises(FileNotFoundError, match="run the prepare stage"):
        RerankData.from_parquet(tmp_path / "valid.parquet", history_len=2)


def test_catalog_reads_categories_and_checks_dense_ids(tmp_path):
    items = pl.DataFrame({"item_id": [2, 1, 3], "category_ids": [[3], [1, 2], []]},
                         schema={"item_id": pl.Int64, "category_ids": pl.List(pl.Int64)})
    write_parquet(tmp_path / "items.parquet", items)
    catalog = read_catalog(tmp_path / "items.parquet")
    assert (catalog.n_items, catalog.n_categories) == (3, 3)
    assert catalog.item_categories.tolist() == [[0, 0], [1, 2], [3, 0], [0, 0]]
    write_parquet(tmp_path / "gap.parquet", items.with_columns(pl.Series("item_id", [1, 2, 4])))
    with pytest.raises(ValueError, match="gap.parquet: item ids must be dense 1..3; item_id 4 is out of place"):
        read_catalog(tmp_path / "gap.parquet")
