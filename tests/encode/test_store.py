"""EmbeddingStore: shard round trips, index consistency, memory-mapped reads, atomic replacement."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ur4rec.encode.shards import rows_per_shard
from ur4rec.encode.store import INDEX_FILE, META_FILE, EmbeddingStore, KindVectors, StoreError, write_store
from ur4rec.io import write_parquet

DIM = 8
TINY_SHARD_MB = 5 * DIM * 4 / 2**20  # five fp32 rows per shard


def kind_vectors(ids, seed=0, dim=DIM) -> KindVectors:
    gen = torch.Generator().manual_seed(seed)
    return KindVectors(np.asarray(ids, dtype=np.int64), torch.randn(len(ids), dim, generator=gen))


@pytest.fixture
def two_kinds():
    # Ids out of order and with gaps: the store must sort them and the table must leave the gaps zero.
    return {"item_text": kind_vectors([7, 3, 1, 12, 5, 9, 2, 4, 11, 6, 8], seed=1),
            "user_pref": kind_vectors([2, 1, 4], seed=2)}


def test_round_trip_across_many_shards(tmp_path, two_kinds):
    write_store(tmp_path / "emb", two_kinds, {"encoder": {"fingerprint": "abc"}}, shard_mb=TINY_SHARD_MB)
    store = EmbeddingStore(tmp_path / "emb")
    assert store.dim == DIM and store.kinds == ["item_text", "user_pref"] and store.fingerprint == "abc"
    assert len(list((tmp_path / "emb").glob("item_text-*.safetensors"))) == 3  # 11 rows, 5 per shard
    kv = two_kinds["item_text"]
    ask = [12, 1, 7, 7, 4]  # order and repeats as asked
    expected = torch.stack([kv.vectors[list(kv.ids).index(i)] for i in ask])
    torch.testing.assert_close(store.get("item_text", ask), expected, rtol=0, atol=0)
    torch.testing.assert_close(store.get("item_text", torch.tensor(ask)), expected, rtol=0, atol=0)
    assert store.ids("user_pref").tolist() == [1, 2, 4]


def test_the_same_vectors_give_the_same_bytes(tmp_path, two_kinds):
    # The store is a DVC output: the same vectors must hash the same, or every stage downstream reruns. safetensors
    # writes its metadata (kind, digest) in a hash map's order, which changes from one write to the next.
    files = {}
    for n in range(8):
        write_store(tmp_path / f"emb{n}", two_kinds, {"encoder": {"fingerprint": "abc"}}, shard_mb=TINY_SHARD_MB)
        files[n] = {f.name: f.read_bytes() for f in sorted((tmp_path / f"emb{n}").iterdir())}
    assert len(files[0]) == 6  # 3 + 1 shards, index and meta
    assert all(files[n] == files[0] for n in files)
    store = EmbeddingStore(tmp_path / "emb7")
    torch.testing.assert_close(store.get("user_pref", [4, 1]), two_kinds["user_pref"].vectors[[2, 1]], rtol=0, atol=0)


def test_table_puts_each_vector_at_its_id_and_zeros_elsewhere(tmp_path, two_kinds):
    write_store(tmp_path / "emb", two_kinds, {}, shard_mb=TINY_SHARD_MB)
    store = EmbeddingStore(tmp_path / "emb")
    table = store.table("item_text", size=15)
    assert table.shape == (15, DIM) and table.dtype == torch.float32
    kv = two_kinds["item_text"]
    for i, vec in zip(kv.ids, kv.vectors):
        torch.testing.assert_close(table[i], vec, rtol=0, atol=0)
    for empty in (0, 10, 13, 14):
        assert not table[empty].any()
    assert store.table("user_pref").shape == (5, DIM)  # default size: max id + 1


def test_fp16_storage_halves_the_bytes_and_stays_close(tmp_path):
    kinds = {"item_know": kind_vectors(range(1, 201), dim=64)}
    write_store(tmp_path / "fp32", kinds, {})
    write_store(tmp_path / "fp16", kinds, {}, dtype=torch.float16)
    store = EmbeddingStore(tmp_path / "fp16")
    assert store.dtype == torch.float16 and store.meta["dtype"] == "fp16"
    assert store.table("item_know", dtype=None).dtype == torch.float16
    assert store.table("item_know").dtype == torch.float32
    kv = kinds["item_know"]
    torch.testing.assert_close(store.get("item_know", kv.ids), kv.vectors, atol=4e-3, rtol=1e-3)
    size = lambda d: sum(p.stat().st_size for p in (tmp_path / d).glob("*.safetensors"))  # noqa: E731
    assert size("fp16") < 0.6 * size("fp32")


def test_index_is_consistent_with_shards_and_meta(tmp_path, two_kinds):
    write_store(tmp_path / "emb", two_kinds, {}, shard_mb=TINY_SHARD_MB)
    index = pq.read_table(tmp_path / "emb" / INDEX_FILE).to_pylist()
    meta = json.loads((tmp_path / "emb" / META_FILE).read_text())
    assert meta["counts"] == {"item_text": 11, "user_pref": 3} and meta["dim"] == DIM and meta["dtype"] == "fp32"
    assert len({(r["kind"], r["id"]) for r in index}) == len(index) == 14
    for row in index:
        assert (tmp_path / "emb" / row["shard"]).exists() and row["shard"].startswith(row["kind"])
    # Within a kind the shards hold ids in ascending order, row by row, so a table build reads them in sequence.
    item_rows = [(r["shard"], r["row"], r["id"]) for r in index if r["kind"] == "item_text"]
    assert [i for _, _, i in sorted(item_rows)] == sorted(two_kinds["item_text"].ids.tolist())


def test_verify_catches_an_index_that_lost_a_row(tmp_path, two_kinds):
    write_store(tmp_path / "emb", two_kinds, {}, shard_mb=TINY_SHARD_MB)
    path = tmp_path / "emb" / INDEX_FILE
    table = pq.read_table(path)
    write_parquet(path, table.slice(1))
    with pytest.raises(StoreError):
        EmbeddingStore(tmp_path / "emb").verify()


def test_missing_shard_is_a_clear_error(tmp_path, two_kinds):
    write_store(tmp_path / "emb", two_kinds, {}, shard_mb=TINY_SHARD_MB)
    (tmp_path / "emb" / "user_pref-00000.safetensors").unlink()
    with pytest.raises(StoreError, match=r"user_pref-00000\.safetensors: shard missing; rerun `ur4rec encode"):
        EmbeddingStore(tmp_path / "emb")


def test_read_errors_name_the_kind_and_id(tmp_path, two_kinds):
    write_store(tmp_path / "emb", two_kinds, {})
    store = EmbeddingStore(tmp_path / "emb")
    with pytest.raises(StoreError, match="'user_pref' has no id 3"):
        store.get("user_pref", [1, 3])
    with pytest.raises(StoreError, match="no kind 'item_know'"):
        store.get("item_know", [1])
    with pytest.raises(StoreError, match="id 12, which does not fit a table of size 10"):
        store.table("item_text", size=10)
    with pytest.raises(StoreError, match="meta.json: missing"):
        EmbeddingStore(tmp_path / "nowhere")


@pytest.mark.parametrize("kinds, match", [
    ({"a": kind_vectors([0, 1])}, "id 0"),
    ({"a": kind_vectors([1, 2, 1])}, "id 1 appears more than once"),
    ({"a": kind_vectors([1]), "b": kind_vectors([1], dim=4)}, "one vector width"),
    ({"a": KindVectors(np.array([1, 2]), torch.zeros(3, DIM))}, "2 ids but 3 vectors"),
])
def test_write_rejects_bad_input_and_keeps_the_old_store(tmp_path, two_kinds, kinds, match):
    write_store(tmp_path / "emb", two_kinds, {})
    with pytest.raises(StoreError, match=match):
        write_store(tmp_path / "emb", kinds, {})
    assert EmbeddingStore(tmp_path / "emb").kinds == ["item_text", "user_pref"]
    assert [p.name for p in tmp_path.iterdir()] == ["emb"]  # no temporary folder left behind


def test_rows_per_shard_bounds_the_shard_bytes():
    assert rows_per_shard(384, torch.float32, 1) == 2**20 // (384 * 4)
    assert rows_per_shard(384, torch.float16, 1) == 2**20 // (384 * 2)
    assert rows_per_shard(10**7, torch.float32, 1) == 1


@settings(max_examples=25, deadline=None)
@given(
    ids=st.lists(st.integers(1, 500), min_size=1, max_size=60, unique=True),
    dim=st.integers(1, 12),
    rows_per=st.integers(1, 20),
    data=st.data(),
)
def test_any_store_round_trips(tmp_path_factory, ids, dim, rows_per, data):
    root = tmp_path_factory.mktemp("emb")
    kv = kind_vectors(ids, dim=dim)
    write_store(root / "emb", {"k": kv}, {}, shard_mb=rows_per * dim * 4 / 2**20)
    store = EmbeddingStore(root / "emb")
    ask = data.draw(st.lists(st.sampled_from(ids), max_size=30))
    expected = kv.vectors[[ids.index(i) for i in ask]] if ask else torch.empty(0, dim)
    torch.testing.assert_close(store.get("k", ask), expected, rtol=0, atol=0)
    table = store.table("k")
    torch.testing.assert_close(table[ids], kv.vectors, rtol=0, atol=0)
    assert int(table.abs().sum(-1).ne(0).sum()) <= len(ids)


def test_a_kind_without_vectors_is_still_a_kind(tmp_path):
    write_store(tmp_path / "emb", {"k": KindVectors(np.array([], dtype=np.int64), torch.zeros(0, DIM))}, {})
    store = EmbeddingStore(tmp_path / "emb")
    assert store.kinds == ["k"] and store.table("k", size=3).abs().sum() == 0
    assert pq.read_table(tmp_path / "emb" / INDEX_FILE).schema.field("id").type == pa.int64()
