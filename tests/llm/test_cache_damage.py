"""Damaged LLM cache shards: read whole or set aside (their outputs regenerated), never half-read."""

from __future__ import annotations

import logging
import os
import random
import re

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fixtures import mutations as mut
from ur4rec.llm.cache import LLMCache

EXAMPLES = int(os.environ.get("UR4REC_FUZZ_EXAMPLES", "15"))


def rec(key: str) -> dict:
    return {"key": key, "model": "m", "sampling_fingerprint": "s", "prompt": f"prompt {key}",
            "text": f"The user likes {key} " * 20, "n_prompt_tokens": 3, "n_output_tokens": 2,
            "finish_reason": "stop", "status": "ok", "attempts": 1, "seed": 0, "created_at": 0.0}


def two_shards(root) -> tuple[LLMCache, object]:
    """A cache of 20 `good` entries and 20 `hit` entries, one shard each; returns the `hit` shard."""
    cache = LLMCache(root)
    cache.append([rec(f"good{i}") for i in range(20)])
    return cache, cache.append([rec(f"hit{i}") for i in range(20)])


def rows(shard) -> dict[str, dict]:
    return {r["key"]: r for r in pq.read_table(shard).to_pylist()}


@settings(max_examples=EXAMPLES, deadline=None, print_blob=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(damage=st.sampled_from(mut.BINARY), rnd=st.randoms(use_true_random=False))
def test_a_damaged_shard_is_read_whole_or_set_aside(tmp_path_factory, damage, rnd):
    root = tmp_path_factory.mktemp("llm") / "llm"
    cache, shard = two_shards(root)
    good, original = rows(cache.shards()[0] if cache.shards()[0] != shard else cache.shards()[1]), rows(shard)
    shard.write_bytes(mut.DAMAGE[damage](shard.read_bytes(), rnd, "utf-8"))

    fresh = LLMCache(root)
    hits = {k: v for k, v in fresh.entries.items() if k.startswith("hit")}
    assert {k: v for k, v in fresh.entries.items() if k.startswith("good")} == good
    if hits:  # read whole: every entry, unchanged
        assert hits == original and shard.exists()
    else:  # set aside, to be generated again
        assert not shard.exists() and (fresh.quarantine / shard.name).exists()


def test_a_byte_changed_inside_a_page_is_caught_by_its_checksum(tmp_path, caplog):
    cache, shard = two_shards(tmp_path / "llm")
    data = bytearray(shard.read_bytes())
    data[len(data) // 3] ^= 0x01  # inside the column data, far from the footer
    shard.write_bytes(bytes(data))
    fresh = LLMCache(tmp_path / "llm")
    with caplog.at_level(logging.WARNING):
        assert sorted(fresh.entries) == sorted(f"good{i}" for i in range(20))
    assert shard.name in caplog.text


@pytest.mark.parametrize("change, match", [
    (lambda t: t.drop_columns(["status"]), r"lacks column\(s\) \['status'\]"),
    (lambda t: t.set_column(t.schema.get_field_index("attempts"), "attempts", pa.array(["x"] * t.num_rows)),
     "columns of other types"),
    (lambda t: t.set_column(0, "key", pa.array([None] * t.num_rows, pa.string())), "rows without a key"),
])
def test_a_shard_of_another_schema_is_set_aside(tmp_path, caplog, change, match):
    cache, shard = two_shards(tmp_path / "llm")
    pq.write_table(change(pq.read_table(shard)), shard)
    fresh = LLMCache(tmp_path / "llm")
    with caplog.at_level(logging.WARNING):
        assert not any(k.startswith("hit") for k in fresh.entries) and len(fresh) == 20
    assert shard.name in caplog.text
    assert len([line for line in caplog.text.splitlines() if shard.name in line]) == 1
    assert re.search(match, caplog.text)


def test_compact_sets_a_damaged_shard_aside_and_keeps_the_rest(tmp_path):
    cache, shard = two_shards(tmp_path / "llm")
    cache.append([rec("more")])
    shard.write_bytes(shard.read_bytes()[:100])
    merged = LLMCache(tmp_path / "llm").compact()
    assert LLMCache(tmp_path / "llm").shards() == [merged]
    assert sorted(LLMCache(tmp_path / "llm").entries) == sorted([*(f"good{i}" for i in range(20)), "more"])


def test_regenerated_outputs_fill_the_gap(tmp_path):
    cache, shard = two_shards(tmp_path / "llm")
    shard.write_bytes(random.Random(0).randbytes(200))
    fresh = LLMCache(tmp_path / "llm")
    missing = [f"hit{i}" for i in range(20) if f"hit{i}" not in fresh]
    assert len(missing) == 20
    fresh.append([rec(k) for k in missing])  # what the generate stage does with misses
    assert len(LLMCache(tmp_path / "llm")) == 40
