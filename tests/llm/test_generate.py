"""The stage function end to end on real engines: outputs, cache hits and misses, retries, failures."""

from __future__ import annotations

import json

import polars as pl
import pytest

from tests.conftest import REPO_ROOT
from tests.llm.helpers import DATASET, copy_prepared, llm_params
from ur4rec.llm.cache import LLMCache
from ur4rec.llm.generate import generate_dataset
from ur4rec.paths import cache_dir

pytestmark = pytest.mark.slow

COLUMNS = ["prompt_hash", "text", "n_prompt_tokens", "n_output_tokens", "finish_reason", "status", "attempts",
           "model", "sampling_fingerprint"]


@pytest.fixture
def paths(tmp_path, prepared):
    return copy_prepared(prepared, tmp_path / "data")


def outputs(paths):
    return (pl.read_parquet(paths.llm / "user_preferences.parquet"), pl.read_parquet(paths.llm / "item_knowledge.parquet"))


def n_rows(paths, name):
    return pl.read_parquet(paths.prepared / f"{name}.parquet").height


def test_outputs_cover_every_user_and_item_and_a_rerun_hits_the_cache(paths, tiny_llama, vllm_backend):
    params = llm_params(tiny_llama, "vllm")
    first = generate_dataset(params, DATASET, paths.root, backend=vllm_backend)
    users, items = outputs(paths)
    assert users.columns == ["user_id", *COLUMNS] and items.columns == ["item_id", *COLUMNS]
    assert users["user_id"].to_list() == sorted(pl.read_parquet(paths.prepared / "users.parquet")["user_id"])
    assert items["item_id"].to_list() == sorted(pl.read_parquet(paths.prepared / "items.parquet")["item_id"])
    assert set(users["status"]) | set(items["status"]) <= {"ok", "truncated", "degenerate", "empty"}
    assert (items["n_output_tokens"] > 0).all() and (items["n_prompt_tokens"] > 0).all()
    assert first["cache_hits"] == 0 and first["generated"] == first["unique_prompts"]
    assert json.loads((paths.llm / "stats.json").read_text())["generated"] == first["generated"]
    cache = LLMCache(cache_dir("llm", paths.root))
    assert set(users["prompt_hash"]) | set(items["prompt_hash"]) <= set(cache.entries)

    # Parameters of later stages are not part of any key: nothing is generated again.
    params = llm_params(tiny_llama, "vllm", "train.lr=0.5", "encoder.batch_size=3", "prepare.seed=9")
    again = generate_dataset(params, DATASET, paths.root, backend=vllm_backend)
    assert again["generated"] == 0 and again["cache_hits"] == again["unique_prompts"]
    assert outputs(paths)[0].equals(users) and outputs(paths)[1].equals(items)


def test_adding_users_generates_only_their_prompts(paths, tiny_llama, vllm_backend):
    all_users = pl.read_parquet(paths.prepared / "users.parquet")
    all_users.head(10).write_parquet(paths.prepared / "users.parquet")
    params = llm_params(tiny_llama, "vllm")
    generate_dataset(params, DATASET, paths.root, backend=vllm_backend)
    all_users.write_parquet(paths.prepared / "users.parquet")
    summary = generate_dataset(params, DATASET, paths.root, backend=vllm_backend)
    assert summary["generated"] == all_users.height - 10
    assert outputs(paths)[0].height == all_users.height


def test_changing_the_item_template_regenerates_only_item_knowledge(paths, tmp_path, tiny_llama, vllm_backend):
    generate_dataset(llm_params(tiny_llama, "vllm"), DATASET, paths.root, backend=vllm_backend)
    users_before = outputs(paths)[0]
    template = tmp_path / "item_movie.yaml"
    template.write_text((REPO_ROOT / "templates/item_movie.yaml").read_text().replace("Write one concise paragraph.", "Be brief."))
    params = llm_params(tiny_llama, "vllm", f"llm.templates.item.movie={template}")
    summary = generate_dataset(params, DATASET, paths.root, backend=vllm_backend)
    assert summary["generated"] == n_rows(paths, "items")
    assert summary["cache_hits"] == n_rows(paths, "users")
    assert outputs(paths)[0].equals(users_before)


def test_a_rejected_prompt_is_recorded_as_failed_and_not_cached(paths, tiny_llama, vllm_backend):
    items = pl.read_parquet(paths.prepared / "items.parquet")
    long_title = "An Extremely Long Title " * 300  # beyond llm.vllm.max_model_len
    items.with_columns(pl.when(pl.col("item_id") == 1).then(pl.lit(long_title)).otherwise(pl.col("title")).alias("title")) \
        .write_parquet(paths.prepared / "items.parquet")
    params = llm_params(tiny_llama, "vllm")
    generate_dataset(params, DATASET, paths.root, backend=vllm_backend)
    knowledge = outputs(paths)[1]
    failed = knowledge.filter(pl.col("status") == "failed")
    assert failed["item_id"].to_list() == [1] and failed["text"].to_list() == [""]
    assert failed["prompt_hash"][0] not in LLMCache(cache_dir("llm", paths.root)).entries
    # Only the failure is tried again on the next run (history items titled like item 1 failed too).
    assert generate_dataset(params, DATASET, paths.root, backend=vllm_backend)["generated"] >= 1
    assert generate_dataset(params, DATASET, paths.root, backend=vllm_backend)["generated"] <= 1 + n_rows(paths, "users")


def keep_users(paths, n: int) -> None:
    """Fewer prompts for the slow transformers runs (every item stays: histories refer to them)."""
    pl.read_parquet(paths.prepared / "users.parquet").head(n).write_parquet(paths.prepared / "users.parquet")


def test_looping_outputs_are_retried_then_kept_with_their_status(paths, looping_llama):
    keep_users(paths, 4)
    params = llm_params(looping_llama, "transformers", "llm.sampling.max_new_tokens=10", "llm.sampling.temperature=0",
                        "llm.quality.max_retries=2")
    summary = generate_dataset(params, DATASET, paths.root)
    users, items = outputs(paths)
    both = pl.concat([users.drop("user_id"), items.drop("item_id")])
    assert set(both["status"]) == {"degenerate"}
    assert set(both["attempts"]) == {3}
    assert both["text"][0].startswith("the the the")
    assert summary["retried"] == 2 * summary["unique_prompts"]
    assert summary["status"]["user"] == {"degenerate": users.height}
    # Kept in the cache with that status: a rerun does not loop on them again.
    assert generate_dataset(params, DATASET, paths.root)["generated"] == 0


def test_a_retry_with_another_seed_can_recover(paths, coin_llama):
    """Half of this model's answers are empty, decided by the sampling seed."""
    keep_users(paths, 4)
    params = llm_params(coin_llama, "transformers", "llm.quality.min_chars=1", "llm.quality.retry_on=[empty]",
                        "llm.quality.max_retries=3")
    generate_dataset(params, DATASET, paths.root)
    both = pl.concat([o.drop(o.columns[0]) for o in outputs(paths)])
    recovered = both.filter((pl.col("attempts") > 1) & (pl.col("status") != "empty"))
    assert recovered.height > 0
    assert (both.filter(pl.col("attempts") == 1)["text"].str.len_chars() > 0).all()
    assert set(both.filter(pl.col("status") == "empty")["attempts"]) <= {4}


def test_missing_prepared_data_names_the_stage_to_run(tmp_path, tiny_llama):
    with pytest.raises(FileNotFoundError, match=r"users.parquet.*dvc repro prepare@ml-100k"):
        generate_dataset(llm_params(tiny_llama), DATASET, tmp_path)


def test_domain_without_template_is_a_clear_error(paths, tiny_llama):
    params = llm_params(tiny_llama, "transformers", f"dataset.{DATASET}.domain=podcast")
    with pytest.raises(ValueError, match="no item template for domain 'podcast'"):
        generate_dataset(params, DATASET, paths.root)
