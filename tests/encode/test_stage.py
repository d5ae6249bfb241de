"""The encode stage function end to end on tiny Parquet inputs with the real MiniLM encoder."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
import torch

from ur4rec.config import section
from ur4rec.encode.config import EncoderConfig
from ur4rec.encode.encode import encode_dataset
from ur4rec.encode.inputs import EncodeInputError
from ur4rec.encode.store import KINDS, EmbeddingStore
from ur4rec.encode.texts import TextInputError
from ur4rec.io import write_parquet
from ur4rec.paths import DatasetPaths

from tests.encode.helpers import write_generations, write_llm, write_prepared



def run(paths, **encoder):
    cfg = section(EncoderConfig, {"batch_size": 8, "threads": 1, **encoder}, "encoder")
    return encode_dataset(cfg, paths, progress=False)


def cos(a, b):
    return torch.nn.functional.cosine_similarity(a, b, dim=-1)


@pytest.mark.slow
def test_stage_writes_every_kind_and_applies_the_policy(tmp_path, minilm):
    paths = DatasetPaths("tiny", tmp_path / "data")
    write_prepared(paths)
    write_llm(paths, user_status={2: "failed"}, item_status={3: "empty", 5: "degenerate"})
    report = run(paths)

    store = EmbeddingStore(paths.emb)
    store.verify()
    assert store.kinds == sorted(KINDS) and store.dim == 384
    assert {k: len(store.ids(k)) for k in KINDS} == {"user_pref": 6, "item_know": 12, "user_text": 6, "item_text": 12,
                                                     "item_answer": 12}
    assert report["kinds"]["user_pref"]["replaced"] == {"failed": 1}
    assert report["kinds"]["item_know"]["replaced"] == {"degenerate": 1, "empty": 1}
    assert json.loads(paths.encode_report.read_text())["kinds"] == report["kinds"]
    assert store.meta["encoder"]["fingerprint"] == minilm.fingerprint

    # Stored vectors are the encoder's vectors of the right texts.
    items = pq.read_table(paths.prepared / "items.parquet").to_pylist()
    texts = [f"{r['title']}. Categories: {', '.join(r['categories'])}." for r in items]
    expected = minilm.encode(texts, progress=False)
    assert cos(store.get("item_text", [r["item_id"] for r in items]), expected).min() > 0.999
    know = pq.read_table(paths.llm / "item_knowledge.parquet").to_pylist()
    assert cos(store.get("item_know", [1])[0], minilm.encode([know[0]["text"]], progress=False)[0]) > 0.999
    # fallback_text: a failed generation gets the raw text vector of the same id, never the failed text's.
    torch.testing.assert_close(store.get("user_pref", [2]), store.get("user_text", [2]))
    torch.testing.assert_close(store.get("item_know", [3, 5]), store.get("item_text", [3, 5]))
    assert not torch.equal(store.get("user_pref", [1]), store.get("user_text", [1]))


@pytest.mark.parametrize("policy", ["zero", "mean"])
def test_other_policies(tmp_path, tiny_bert, policy):
    paths = DatasetPaths("tiny", tmp_path / "data")
    write_prepared(paths)
    write_llm(paths, user_status={2: "failed"})
    report = run(paths, model=tiny_bert, on_bad_generation=policy)
    store = EmbeddingStore(paths.emb)
    prefs = store.table("user_pref")
    good = prefs[[1, 3, 4, 5, 6]]
    expected = torch.zeros(store.dim) if policy == "zero" else good.mean(0)
    torch.testing.assert_close(prefs[2], expected)
    assert report["kinds"]["user_pref"]["policy"] == policy


@pytest.mark.slow
def test_rerun_comes_from_the_cache_and_new_items_encode_only_their_texts(tmp_path):
    paths = DatasetPaths("tiny", tmp_path / "data")
    write_prepared(paths, n_items=12)
    write_llm(paths, n_items=12)
    first = run(paths)
    assert first["texts"]["encoded"] == first["texts"]["unique"] > 0 and first["texts"]["cache_hits"] == 0
    before = EmbeddingStore(paths.emb).table("item_know")

    again = run(paths)
    assert again["texts"]["encoded"] == 0 and again["texts"]["cache_hits"] == first["texts"]["unique"]
    torch.testing.assert_close(EmbeddingStore(paths.emb).table("item_know"), before, rtol=0, atol=0)

    write_prepared(paths, n_items=14)  # two new items; users and the first twelve items unchanged
    write_llm(paths, n_items=14)
    grown = run(paths)
    assert grown["texts"]["encoded"] == 4  # item_text and item_know of items 13 and 14, nothing else
    store = EmbeddingStore(paths.emb)
    assert store.ids("item_know").tolist() == list(range(1, 15))
    torch.testing.assert_close(store.table("item_know")[:13], before, rtol=0, atol=0)


def test_cache_off_encodes_everything_each_time(dataset_paths, tiny_bert):
    run(dataset_paths, model=tiny_bert, cache=False)
    report = run(dataset_paths, model=tiny_bert, cache=False)
    assert report["texts"]["encoded"] == report["texts"]["unique"]
    assert not (dataset_paths.root / "cache").exists()


def test_fp16_storage(dataset_paths, tiny_bert):
    run(dataset_paths, model=tiny_bert, storage_dtype="fp16")
    store = EmbeddingStore(dataset_paths.emb)
    assert store.dtype == torch.float16 and store.table("user_text", dtype=None).dtype == torch.float16


def test_missing_generation_rows_are_replaced_and_counted(dataset_paths, tiny_bert):
    path = dataset_paths.llm / "user_preferences.parquet"
    write_parquet(path, pq.read_table(path).slice(1))  # user 1 has no row
    report = run(dataset_paths, model=tiny_bert)
    assert report["kinds"]["user_pref"]["replaced"] == {"missing": 1}
    store = EmbeddingStore(dataset_paths.emb)
    torch.testing.assert_close(store.get("user_pref", [1]), store.get("user_text", [1]))


def _rewrite_generations(paths, **change):
    rows = pq.read_table(paths.llm / "item_knowledge.parquet").to_pylist()
    rows[0].update(change)
    write_generations(paths.llm / "item_knowledge.parquet", "item_id", [r["item_id"] for r in rows],
                      [r["text"] for r in rows], [r["status"] for r in rows])


@pytest.mark.parametrize("change, match", [
    ({"item_id": 99}, r"item_knowledge.parquet: item_id 99 is not in the prepared tables"),
    ({"item_id": 2}, r"item_knowledge.parquet: item_id 2 appears 2 times"),
    ({"status": "weird"}, r"item_knowledge.parquet: item_id 1 has status 'weird'"),
])
def test_contract_breaches_name_file_and_id(dataset_paths, change, match):
    _rewrite_generations(dataset_paths, **change)
    with pytest.raises(EncodeInputError, match=match):
        run(dataset_paths)
    assert not dataset_paths.emb.exists()


def test_missing_input_names_the_file_and_its_stage(dataset_paths):
    (dataset_paths.llm / "user_preferences.parquet").unlink()
    with pytest.raises(EncodeInputError, match="user_preferences.parquet: missing .*generate stage"):
        run(dataset_paths)


def test_history_pointing_at_an_unknown_item_is_an_error(dataset_paths):
    path = dataset_paths.prepared / "items.parquet"
    write_parquet(path, pq.read_table(path).slice(0, 3))
    with pytest.raises((TextInputError, EncodeInputError), match="item"):
        run(dataset_paths)


def test_a_killed_run_leaves_no_store_and_resumes_from_the_cache(dataset_paths, tiny_bert, monkeypatch):
    from ur4rec.encode import encoder as encoder_module

    monkeypatch.setattr(encoder_module, "SORT_WINDOW", 5)
    windows = []
    real_window = encoder_module.FrozenEncoder._encode_window

    def dies_in_third_window(self, texts):
        windows.append(len(texts))
        if len(windows) == 3:
            raise RuntimeError("killed")
        yield from real_window(self, texts)

    monkeypatch.setattr(encoder_module.FrozenEncoder, "_encode_window", dies_in_third_window)
    with pytest.raises(RuntimeError, match="killed"):
        run(dataset_paths, model=tiny_bert)
    assert not dataset_paths.emb.exists()  # nothing half-written where training reads
    monkeypatch.undo()

    report = run(dataset_paths, model=tiny_bert)
    assert report["texts"]["cache_hits"] == 10  # the two finished windows
    assert report["texts"]["encoded"] == report["texts"]["unique"] - 10
