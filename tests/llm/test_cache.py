"""The content-addressed output cache: keys, append-only shards, union of shards, compaction, stats."""

from __future__ import annotations

import hashlib
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ur4rec.llm.cache import SCHEMA, CacheError, LLMCache, cache_key, read_shard


def rec(key: str, text: str = "t", status: str = "ok", model: str = "m") -> dict:
    return {"key": key, "model": model, "sampling_fingerprint": "s", "prompt": "p" + key, "text": text,
            "n_prompt_tokens": 3, "n_output_tokens": 2, "finish_reason": "stop", "status": status,
            "attempts": 1, "seed": 0, "created_at": 0.0}


def test_key_depends_on_model_sampling_and_prompt():
    base = cache_key("m", "s", "hello")
    assert base == cache_key("m", "s", "hello")
    assert len({base, cache_key("m2", "s", "hello"), cache_key("m", "s2", "hello"), cache_key("m", "s", "hello ")}) == 4
    # No ambiguity from how the parts are joined.
    assert cache_key("a", "bc", "d") != cache_key("ab", "c", "d")


def test_an_output_schema_is_part_of_the_key_and_free_text_keys_are_unchanged():
    free = cache_key("m", "s", "p")
    assert len({free, cache_key("m", "s", "p", "json_schema|a"), cache_key("m", "s", "p", "json_schema|b")}) == 3
    # Free-text keys are those written before structured outputs existed, so old caches stay valid.
    assert free == hashlib.sha256(json.dumps(["m", "s", "p"]).encode()).hexdigest()


def test_shards_written_before_the_structured_columns_read_them_as_null(tmp_path):
    old = pa.Table.from_pylist([rec("a")], schema=pa.schema([f for f in SCHEMA if f.name not in ("raw", "schema_fingerprint")]))
    pq.write_table(old, tmp_path / "20200101T000000000000-1-abcdef12.parquet")
    cache = LLMCache(tmp_path)
    assert cache.get("a")["raw"] is None and cache.get("a")["schema_fingerprint"] is None
    cache.append([{**rec("b"), "raw": '{"x": 1}', "schema_fingerprint": "f"}])
    cache.compact()
    fresh = LLMCache(tmp_path)
    assert fresh.get("a")["raw"] is None and fresh.get("b")["raw"] == '{"x": 1}'


def test_append_writes_one_readable_shard_per_flush(tmp_path):
    cache = LLMCache(tmp_path / "llm")
    cache.append([rec("a"), rec("b")])
    cache.append([rec("c")])
    assert len(cache.shards()) == 2
    assert all(pq.read_table(s).num_rows for s in cache.shards())
    fresh = LLMCache(tmp_path / "llm")  # another process reading the same folder
    assert set(fresh.entries) == {"a", "b", "c"} and fresh.get("b")["text"] == "t"
    assert not list((tmp_path / "llm").glob(".*"))  # no temp files left behind


def test_first_answer_wins_and_duplicates_are_counted(tmp_path):
    cache = LLMCache(tmp_path)
    cache.append([rec("a", "first")])
    cache.append([rec("a", "second")])
    fresh = LLMCache(tmp_path)
    assert fresh.get("a")["text"] == "first"
    assert fresh.stats().duplicates == 1


def test_compact_merges_and_keeps_every_entry(tmp_path):
    cache = LLMCache(tmp_path)
    for i in range(5):
        cache.append([rec(f"k{i}"), rec("shared", "one")])
    merged = cache.compact()
    assert cache.shards() == [merged]
    fresh = LLMCache(tmp_path)
    assert sorted(fresh.entries) == ["k0", "k1", "k2", "k3", "k4", "shared"]
    assert fresh.stats().duplicates == 0


def test_stats_counts_status_model_and_bytes(tmp_path):
    cache = LLMCache(tmp_path)
    cache.append([rec("a"), rec("b", status="degenerate"), rec("c", model="other")])
    st = cache.stats()
    assert (st.entries, st.shards) == (3, 1)
    assert st.bytes > 0
    assert st.by_status == {"degenerate": 1, "ok": 2}
    assert st.by_model == {"m": 2, "other": 1}


def test_lookup_log_is_beside_not_inside_the_cache(tmp_path):
    cache = LLMCache(tmp_path / "llm")
    cache.log_lookups(dataset="x", prompts=10, hits=4)
    cache.log_lookups(dataset="y", prompts=5, hits=5)
    assert cache.lookup_log.parent == tmp_path
    assert [r["hits"] for r in cache.lookups()] == [4, 5]


def test_a_shard_that_is_not_parquet_is_set_aside_with_a_warning(tmp_path, caplog):
    cache = LLMCache(tmp_path / "llm")
    cache.append([rec("kept")])
    (tmp_path / "llm" / "20200101T000000-1-deadbeef.parquet").write_bytes(b"not parquet")
    fresh = LLMCache(tmp_path / "llm")
    assert set(fresh.entries) == {"kept"}
    assert "20200101T000000-1-deadbeef.parquet is unreadable" in caplog.text and "generated again" in caplog.text
    assert [p.name for p in fresh.quarantine.iterdir()] == ["20200101T000000-1-deadbeef.parquet"]
    assert fresh.stats().shards == 1


def test_read_shard_names_what_is_wrong(tmp_path):
    (tmp_path / "bad.parquet").write_bytes(b"not parquet")
    with pytest.raises(CacheError, match=r"bad\.parquet is unreadable \("):
        read_shard(tmp_path / "bad.parquet")
