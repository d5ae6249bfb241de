"""A cache row is served only to the question it answers: a planted shard under the right keys changes nothing."""

from __future__ import annotations

import logging

import polars as pl
import pytest

from tests.llm.helpers import copy_prepared, llm_params, run_stage
from ur4rec.llm.cache import LLMCache, write_shard, _row
from ur4rec.paths import cache_dir

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
PLANTED = "00000000T000000000000-0-poisoned.parquet"  # sorts before every real shard: read first


def outputs(paths) -> pl.DataFrame:
    users = pl.read_parquet(paths.llm / "user_preferences.parquet").rename({"user_id": "id"})
    items = pl.read_parquet(paths.llm / "item_knowledge.parquet").rename({"item_id": "id"})
    return pl.concat([users.with_columns(pl.lit("user").alias("kind")), items.with_columns(pl.lit("item").alias("kind"))])


def test_a_planted_shard_with_the_same_keys_changes_no_output(tmp_path, prepared, tiny_llama, caplog):
    paths = copy_prepared(prepared, tmp_path / "data")
    pl.read_parquet(paths.prepared / "users.parquet").head(4).write_parquet(paths.prepared / "users.parquet")
    params = llm_params(tiny_llama, "transformers")
    first = run_stage(params, paths)
    before = outputs(paths)
    root = cache_dir("llm", paths.root)
    genuine = list(LLMCache(root).entries.values())
    assert first["generated"] == len(genuine) == before.height

    # Another model's answers under exactly the same keys, and one row of the right model for another prompt.
    other = [{**row, "model": "hf:someone/else@" + "0" * 40 + "|float32", "text": "POISONED answer"} for row in genuine]
    other[0] = {**genuine[0], "prompt": genuine[0]["prompt"] + " and more", "text": "POISONED answer"}
    write_shard(root / PLANTED, [_row(r) for r in other])
    assert LLMCache(root).get(genuine[1]["key"])["text"] == "POISONED answer"  # the key alone would serve it

    LLMCache(root).compact()  # merging must not bury the planted rows among the genuine ones
    assert (root / PLANTED).exists() and len(LLMCache(root).shards()) == 2

    with caplog.at_level(logging.WARNING, logger="ur4rec.llm.cache"):
        second = run_stage(params, paths)
    after = outputs(paths)
    assert second["generated"] == 0 and second["cache_hits"] == len(genuine)  # the genuine rows still served
    assert not after["text"].str.contains("POISONED").any()
    assert after.select("kind", "id", "text", "model").equals(before.select("kind", "id", "text", "model"))
    assert not (root / PLANTED).exists() and (LLMCache(root).quarantine / PLANTED).exists()
    assert any(PLANTED in r.getMessage() and "not served" in r.getMessage() for r in caplog.records)


def test_a_planted_shard_alone_is_never_served(tmp_path, prepared, tiny_llama):
    """With no genuine answer in the cache, the planted rows are set aside and every prompt is generated."""
    paths = copy_prepared(prepared, tmp_path / "data")
    pl.read_parquet(paths.prepared / "users.parquet").head(2).write_parquet(paths.prepared / "users.parquet")
    params = llm_params(tiny_llama, "transformers")
    clean = tmp_path / "clean"
    first = run_stage(llm_params(tiny_llama, "transformers", f"llm.cache_dir={clean}"), paths)
    rows = list(LLMCache(clean).entries.values())
    root = cache_dir("llm", paths.root)
    write_shard(root / PLANTED, [_row({**r, "model": "gguf@0000|bfloat16", "text": "POISONED answer"}) for r in rows])
    second = run_stage(params, paths)
    assert second["generated"] == first["generated"] == len(rows)
    assert not outputs(paths)["text"].str.contains("POISONED").any()
