"""Damaged files the encode stage and training read: refused in one line, or set aside and recomputed.

The embedding store is refused whole (naming the file and the command that rebuilds it); the encoder cache
sets a damaged part aside and encodes its texts again; an input table of an older layout is refused by
column. In no case does a half-read or changed vector go downstream.
"""

from __future__ import annotations

import logging
import os
import random
import re

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.encode.helpers import write_llm, write_prepared
from tests.fixtures import mutations as mut
from ur4rec.encode.cache import EmbeddingCache
from ur4rec.encode.config import EncoderConfig
from ur4rec.encode.inputs import EncodeInputError, read_inputs
from ur4rec.encode.store import INDEX_FILE, META_FILE, EmbeddingStore, KindVectors, StoreError, write_store
from ur4rec.errors import UserError
from ur4rec.paths import DatasetPaths

EXAMPLES = int(os.environ.get("UR4REC_FUZZ_EXAMPLES", "15"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, print_blob=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture])
DIM = 8
FIVE_ROWS_MB = 5 * DIM * 4 / 2**20
REBUILD = "rerun `ur4rec encode --dataset tiny` (or `dvc repro encode@tiny`)"


def kinds() -> dict[str, KindVectors]:
    gen = torch.Generator().manual_seed(0)
    return {"item_text": KindVectors(np.arange(1, 13), torch.randn(12, DIM, generator=gen)),
            "user_pref": KindVectors(np.array([3, 1, 2]), torch.randn(3, DIM, generator=gen))}


def a_store(root, dtype=torch.float32):
    path = DatasetPaths("tiny", root).emb
    write_store(path, kinds(), {"dataset": "tiny"}, dtype=dtype, shard_mb=FIVE_ROWS_MB)
    return path


def one_line_store_error(path) -> str:
    with pytest.raises(StoreError) as caught:
        EmbeddingStore(path)
    message = str(caught.value)
    assert "\n" not in message and message.endswith(REBUILD), message
    return message


# ---------------------------------------------------------------- the store


@FUZZ
@given(data=st.data(), rnd=st.randoms(use_true_random=False))
def test_a_damaged_store_is_refused_whole_or_read_exactly(tmp_path_factory, data, rnd):
    path = a_store(tmp_path_factory.mktemp("data"), dtype=data.draw(st.sampled_from([torch.float32, torch.float16])))
    before = EmbeddingStore(path)
    tables = {kind: before.table(kind, dtype=None) for kind in before.kinds}
    victim = path / data.draw(st.sampled_from(sorted(p.name for p in path.iterdir())), label="file")
    damage = data.draw(st.sampled_from(mut.BINARY), label="damage")
    victim.write_bytes(mut.DAMAGE[damage](victim.read_bytes(), rnd, "utf-8"))
    try:
        store = EmbeddingStore(path)
        after = {kind: store.table(kind, dtype=None) for kind in store.kinds}
    except StoreError as exc:
        message = str(exc)
        assert "\n" not in message and message.endswith(REBUILD) and str(path) in message, message
        return
    assert after.keys() == tables.keys()
    for kind, table in tables.items():
        assert torch.equal(after[kind], table), f"{victim.name} ({damage}) changed {kind} unnoticed"


def test_a_truncated_shard_is_named_with_the_command_that_rebuilds_it(tmp_path):
    path = a_store(tmp_path)
    shard = path / "item_text-00001.safetensors"
    shard.write_bytes(shard.read_bytes()[:-7])
    message = one_line_store_error(path)
    assert message.startswith(f"{shard}: not a readable safetensors shard (")


def test_a_changed_number_is_caught_by_the_shard_digest(tmp_path):
    path = a_store(tmp_path)
    shard = path / "user_pref-00000.safetensors"
    data = bytearray(shard.read_bytes())
    data[-5] ^= 0x40  # inside the last vector: safetensors alone would read it without complaint
    shard.write_bytes(bytes(data))
    assert one_line_store_error(path).startswith(f"{shard}: its numbers changed since it was written")


@pytest.mark.parametrize("meta, match", [
    ("{not json", r"meta\.json: unreadable \("),
    ('{"format": 0, "dim": 8, "dtype": "fp32"}', r"meta\.json: store format 0, this version reads 1"),
    ('{"format": 1, "dim": "8", "dtype": "fp32"}', r"meta\.json: needs a positive integer dim"),
    ('{"format": 1, "dim": 8, "dtype": "fp8"}', r"meta\.json: needs a positive integer dim and a dtype"),
    ("[1, 2]", r"meta\.json: not a JSON object"),
])
def test_a_bad_meta_json_is_named(tmp_path, meta, match):
    path = a_store(tmp_path)
    (path / META_FILE).write_text(meta)
    assert re.search(match, one_line_store_error(path))


@pytest.mark.parametrize("change, match", [
    (lambda t: t.drop_columns(["row"]), r"index\.parquet: missing column\(s\) \['row'\]"),
    (lambda t: t.set_column(1, "id", pa.array([str(i) + "x" for i in t.column("id").to_pylist()])),
     r"index\.parquet: columns of other types"),
    (lambda t: t.set_column(2, "shard", pa.array([None] * t.num_rows, pa.string())),
     r"null values in column\(s\) \['shard'\]"),
    (lambda t: t.set_column(3, "row", pa.array([r + 1 for r in t.column("row").to_pylist()])),
     r"index rows do not cover its \d+ rows exactly once"),
])
def test_an_index_of_another_layout_is_named(tmp_path, change, match):
    path = a_store(tmp_path)
    pq.write_table(change(pq.read_table(path / INDEX_FILE)), path / INDEX_FILE)
    assert re.search(match, one_line_store_error(path))


# ---------------------------------------------------------------- the encoder cache


def filled_cache(root, n=12):
    cache = EmbeddingCache(root, "fp-test", DIM, shard_mb=4 * DIM * 4 / 2**20)  # four rows per part
    texts = [f"text {i}" for i in range(n)]
    vectors = torch.randn(n, DIM, generator=torch.Generator().manual_seed(1))
    cache.add(cache.keys(texts), vectors)
    return cache, texts, vectors


@FUZZ
@given(data=st.data(), rnd=st.randoms(use_true_random=False))
def test_a_damaged_cache_part_gives_exact_vectors_or_misses(tmp_path_factory, data, rnd):
    root = tmp_path_factory.mktemp("emb-cache")
    cache, texts, vectors = filled_cache(root)
    victim = cache.dir / data.draw(st.sampled_from(sorted(p.name for p in cache.dir.iterdir())), label="file")
    victim.write_bytes(mut.DAMAGE[data.draw(st.sampled_from(mut.BINARY), label="damage")](
        victim.read_bytes(), rnd, "utf-8"))

    fresh = EmbeddingCache(root, "fp-test", DIM)
    hit, got = fresh.lookup(fresh.keys(texts))
    assert torch.equal(got[torch.from_numpy(hit)], vectors[torch.from_numpy(hit)])  # no changed vector used
    assert not got[torch.from_numpy(~hit)].any()
    if not hit.all():  # a part was set aside; encoding the misses again fills the cache back up
        assert list(fresh.quarantine.iterdir())
        fresh.add([k for k, h in zip(fresh.keys(texts), hit) if not h], vectors[torch.from_numpy(~hit)])
        assert EmbeddingCache(root, "fp-test", DIM).lookup(fresh.keys(texts))[0].all()


def test_a_truncated_cache_part_is_set_aside_with_a_warning(tmp_path, caplog):
    cache, texts, vectors = filled_cache(tmp_path / "emb")
    part = sorted(cache.dir.glob("part-*.safetensors"))[0]
    part.write_bytes(part.read_bytes()[:-3])
    fresh = EmbeddingCache(tmp_path / "emb", "fp-test", DIM)
    with caplog.at_level(logging.WARNING):
        hit, _ = fresh.lookup(fresh.keys(texts))
    assert hit.sum() == 8  # the other two parts of four
    assert f"{part}: not a readable safetensors shard" in caplog.text and "encoded again" in caplog.text
    assert sorted(p.name for p in fresh.quarantine.iterdir()) == sorted([part.name, part.with_suffix(".parquet").name])
    assert not part.exists()


def test_unreadable_cache_keys_are_set_aside_when_the_cache_opens(tmp_path, caplog):
    cache, texts, _ = filled_cache(tmp_path / "emb")
    keys = sorted(cache.dir.glob("part-*.parquet"))[1]
    keys.write_bytes(random.Random(0).randbytes(300))
    with caplog.at_level(logging.WARNING):
        fresh = EmbeddingCache(tmp_path / "emb", "fp-test", DIM)
    assert len(fresh) == 8 and f"{keys}: unreadable keys" in caplog.text


# ---------------------------------------------------------------- input tables of an older layout


@pytest.fixture
def inputs(tmp_path) -> DatasetPaths:
    paths = DatasetPaths("tiny", tmp_path / "data")
    write_prepared(paths)
    write_llm(paths)
    return paths


def rewrite(path, change) -> None:
    pq.write_table(change(pq.read_table(path)), path)


@pytest.mark.parametrize("file, change, match", [
    ("llm/user_preferences.parquet", lambda t: t.drop_columns(["status"]),
     r"user_preferences\.parquet: missing column\(s\) \['status'\], an older layout\? \(written by the generate "
     r"stage; rerun it: `ur4rec generate --dataset tiny` \(or `dvc repro generate@tiny`\)\)"),
    ("llm/user_preferences.parquet",
     lambda t: t.set_column(0, "user_id", pa.array([str(u) for u in t.column(0).to_pylist()])),
     r"user_preferences\.parquet: column 'user_id' holds string, expected integers \(written by the generate stage"),
    ("prepared/users.parquet", lambda t: t.set_column(t.schema.get_field_index("llm_history"), "llm_history",
                                                      pa.array([str(h) for h in t.column("llm_history").to_pylist()])),
     r"users\.parquet: column 'llm_history' holds string, expected lists of integer item ids \(written by the "
     r"prepare stage; rerun it: `ur4rec prepare --dataset tiny`"),
    ("prepared/items.parquet", lambda t: t.set_column(t.schema.get_field_index("categories"), "categories",
                                                      pa.array([1] * t.num_rows)),
     r"items\.parquet: column 'categories' holds int64, expected lists of text"),
])
def test_an_input_of_another_layout_names_file_column_and_stage(inputs, file, change, match):
    rewrite(inputs.base / file, change)
    with pytest.raises(EncodeInputError) as caught:
        read_inputs(inputs, EncoderConfig())
    assert "\n" not in str(caught.value) and re.search(match, str(caught.value)), str(caught.value)


@FUZZ
@given(data=st.data(), rnd=st.randoms(use_true_random=False))
def test_a_damaged_input_table_is_read_or_refused_in_one_line(tmp_path_factory, data, rnd):
    paths = DatasetPaths("tiny", tmp_path_factory.mktemp("inputs") / "data")
    write_prepared(paths)
    write_llm(paths)
    tables = [paths.prepared / "items.parquet", paths.prepared / "users.parquet",
              paths.llm / "item_knowledge.parquet", paths.llm / "user_preferences.parquet"]
    victim = data.draw(st.sampled_from(tables), label="file")
    victim.write_bytes(mut.DAMAGE[data.draw(st.sampled_from(mut.BINARY), label="damage")](
        victim.read_bytes(), rnd, "utf-8"))
    try:
        read_inputs(paths, EncoderConfig())
    except UserError as exc:  # a damaged id can also surface as an unknown id in the table that refers to it
        assert "\n" not in str(exc) and any(str(t) in str(exc) for t in tables), str(exc)
