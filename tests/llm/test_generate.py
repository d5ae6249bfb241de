"""The stage function end to end on real engines: outputs, cache hits and misses, retries, failures."""

from __future__ import annotations

import json

import polars as pl
import pytest

from tests.conftest import REPO_ROOT
from tests.llm.helpers import DATASET, copy_prepared, few_prompts, llm_params, run_stage, structured_params
from ur4rec.llm.answer import attempt_seed
from ur4rec.llm.backends import GenerationError, make_backend
from ur4rec.llm.cache import LLMCache
from ur4rec.llm.config import llm_config
from ur4rec.llm.generate import output_table
from ur4rec.llm.jobs import build_jobs, read_prepared
from ur4rec.paths import DatasetPaths, cache_dir

pytestmark = pytest.mark.slow

COLUMNS = ["prompt_hash", "text", "answer", "n_prompt_tokens", "n_output_tokens", "finish_reason", "status", "attempts",
           "model", "sampling_fingerprint", "setting", "prompt_order", "schema_fingerprint", "raw", "echo_share",
           "titles_repeated"]


@pytest.fixture
def paths(tmp_path, prepared):
    return copy_prepared(prepared, tmp_path / "data")


def outputs(paths):
    return (pl.read_parquet(paths.llm / "user_preferences.parquet"), pl.read_parquet(paths.llm / "item_knowledge.parquet"))


def n_rows(paths, name):
    return pl.read_parquet(paths.prepared / f"{name}.parquet").height


def test_outputs_cover_every_user_and_item_and_a_rerun_hits_the_cache(paths, tiny_llama, vllm_backend):
    params = llm_params(tiny_llama, "vllm")
    first = run_stage(params, paths, vllm_backend)
    users, items = outputs(paths)
    assert users.columns == ["user_id", *COLUMNS] and items.columns == ["item_id", *COLUMNS]
    assert users["user_id"].to_list() == sorted(pl.read_parquet(paths.prepared / "users.parquet")["user_id"])
    assert items["item_id"].to_list() == sorted(pl.read_parquet(paths.prepared / "items.parquet")["item_id"])
    assert set(users["status"]) | set(items["status"]) <= {"ok", "truncated", "degenerate", "empty"}
    assert (items["n_output_tokens"] > 0).all() and (items["n_prompt_tokens"] > 0).all()
    assert first["cache_hits"] == 0 and first["generated"] == first["unique_prompts"]
    stats = json.loads((paths.llm / "stats.json").read_text())
    assert stats["generated"] == first["generated"]
    assert stats["setting"] == {"structured": False, "prompt_order": "instruction_first", "schemas": {}}
    assert stats["echo"]["user"]["n"] == users.height and 0 <= stats["echo"]["item"]["echo_share_median"] <= 1
    assert set(users["setting"]) == {"free"} and users["raw"].null_count() == users.height
    cache = LLMCache(cache_dir("llm", paths.root))
    assert set(users["prompt_hash"]) | set(items["prompt_hash"]) <= set(cache.entries)

    # Parameters of later stages are not part of any key: nothing is generated again.
    params = llm_params(tiny_llama, "vllm", "train.lr=0.5", "encoder.batch_size=3", "prepare.seed=9")
    again = run_stage(params, paths, vllm_backend)
    assert again["generated"] == 0 and again["cache_hits"] == again["unique_prompts"]
    assert outputs(paths)[0].equals(users) and outputs(paths)[1].equals(items)

    # The item's title opens its stored knowledge (llm.item_title: code); `none` keeps the answer alone, from
    # the same cached answers.
    titles = dict(pl.read_parquet(paths.prepared / "items.parquet").select("item_id", "title").iter_rows())
    untitled = run_stage(llm_params(tiny_llama, "vllm", "llm.item_title=none"), paths, vllm_backend)
    assert untitled["generated"] == 0
    answers = outputs(paths)[1]
    for item_id, text, answer, status in zip(items["item_id"], items["text"], answers["text"], items["status"]):
        assert text == (f"{titles[item_id]}. {answer}" if status in ("ok", "truncated") and answer.strip() else answer)
    assert items.filter(pl.col("status").is_in(["ok", "truncated"])).height > 0


def test_adding_users_generates_only_their_prompts(paths, tiny_llama, vllm_backend):
    all_users = pl.read_parquet(paths.prepared / "users.parquet")
    all_users.head(10).write_parquet(paths.prepared / "users.parquet")
    params = llm_params(tiny_llama, "vllm")
    run_stage(params, paths, vllm_backend)
    all_users.write_parquet(paths.prepared / "users.parquet")
    summary = run_stage(params, paths, vllm_backend)
    assert summary["generated"] == all_users.height - 10
    assert outputs(paths)[0].height == all_users.height


def test_changing_the_item_template_regenerates_only_item_knowledge(paths, tmp_path, tiny_llama, vllm_backend):
    run_stage(llm_params(tiny_llama, "vllm"), paths, vllm_backend)
    users_before = outputs(paths)[0]
    template = tmp_path / "item_movie.yaml"
    template.write_text((REPO_ROOT / "templates/item_movie.yaml").read_text().replace("Write one concise paragraph.", "Be brief."))
    params = llm_params(tiny_llama, "vllm", f"llm.templates.item.movie={template}")
    summary = run_stage(params, paths, vllm_backend)
    assert summary["generated"] == n_rows(paths, "items")
    assert summary["cache_hits"] == n_rows(paths, "users")
    assert outputs(paths)[0].equals(users_before)


def test_a_rejected_prompt_is_recorded_as_failed_and_not_cached(paths, tiny_llama, vllm_backend):
    items = pl.read_parquet(paths.prepared / "items.parquet")
    long_title = "An Extremely Long Title " * 300  # beyond llm.vllm.max_model_len
    items.with_columns(pl.when(pl.col("item_id") == 1).then(pl.lit(long_title)).otherwise(pl.col("title")).alias("title")) \
        .write_parquet(paths.prepared / "items.parquet")
    params = llm_params(tiny_llama, "vllm")
    run_stage(params, paths, vllm_backend)
    knowledge = outputs(paths)[1]
    failed = knowledge.filter(pl.col("status") == "failed")
    assert failed["item_id"].to_list() == [1] and failed["text"].to_list() == [""]
    assert failed["prompt_hash"][0] not in LLMCache(cache_dir("llm", paths.root)).entries
    # Only the failure is tried again on the next run (history items titled like item 1 failed too).
    assert run_stage(params, paths, vllm_backend)["generated"] >= 1
    assert run_stage(params, paths, vllm_backend)["generated"] <= 1 + n_rows(paths, "users")


def keep_users(paths, n: int) -> None:
    """Fewer prompts for the slow transformers runs (every item stays: histories refer to them)."""
    pl.read_parquet(paths.prepared / "users.parquet").head(n).write_parquet(paths.prepared / "users.parquet")


def test_looping_outputs_are_retried_then_kept_with_their_status(paths, looping_llama):
    keep_users(paths, 4)
    params = llm_params(looping_llama, "transformers", "llm.sampling.max_new_tokens=10", "llm.sampling.temperature=0",
                        "llm.quality.max_retries=2")
    summary = run_stage(params, paths)
    users, items = outputs(paths)
    both = pl.concat([users.drop("user_id"), items.drop("item_id")])
    assert set(both["status"]) == {"degenerate"}
    assert set(both["attempts"]) == {3}
    assert both["text"][0].startswith("the the the")
    assert summary["retried"] == 2 * summary["unique_prompts"]
    assert summary["status"]["user"] == {"degenerate": users.height}
    # Kept in the cache with that status: a rerun does not loop on them again.
    assert run_stage(params, paths)["generated"] == 0


def test_a_retry_with_another_seed_can_recover(paths, coin_llama):
    """Half of this model's answers are empty, decided by the sampling seed."""
    keep_users(paths, 4)
    params = llm_params(coin_llama, "transformers", "llm.quality.min_chars=1", "llm.quality.retry_on=[empty]",
                        "llm.quality.max_retries=3")
    run_stage(params, paths)
    both = pl.concat([o.drop(o.columns[0]) for o in outputs(paths)])
    recovered = both.filter((pl.col("attempts") > 1) & (pl.col("status") != "empty"))
    assert recovered.height > 0
    assert (both.filter(pl.col("attempts") == 1)["text"].str.len_chars() > 0).all()
    assert set(both.filter(pl.col("status") == "empty")["attempts"]) <= {4}


def test_generations_with_neighbouring_seeds_share_no_draw():
    draws = {seed: [attempt_seed(seed, a) for a in range(4)] for seed in range(50)}
    assert all(d[0] == seed for seed, d in draws.items())
    flat = [s for d in draws.values() for s in d]
    assert len(set(flat)) == len(flat)  # seed k's retries are no other generation's first (or any) draw


def test_every_generation_draws_apart_from_the_others_and_their_retries():
    cfg = llm_config({"llm": {"sampling": {"seed": 5}, "generations": 4}})
    seeds = [cfg.for_generation(g).sampling.seed for g in range(4)]
    assert seeds[0] == 5 and cfg.for_generation(0) == cfg
    draws = [attempt_seed(seed, a) for seed in seeds for a in range(4)]
    assert len(set(draws)) == len(draws)


def test_the_stage_writes_each_generation_with_its_own_seed_and_one_engine(tmp_path, prepared, tiny_llama):
    from ur4rec.runs.generation import generate
    from ur4rec.runs.settings import parse_settings

    paths = few_prompts(prepared, tmp_path / "data", n_users=2)
    s = parse_settings(llm_params(tiny_llama, "transformers", "llm.generations=2"))
    first = generate(s, DATASET, paths.root)
    second = paths.of_generation(1)
    assert second.llm == paths.root / DATASET / "llm_generations" / "1"
    (u0, i0), (u1, i1) = outputs(paths), outputs(second)
    assert u0["user_id"].to_list() == u1["user_id"].to_list() and i0["item_id"].to_list() == i1["item_id"].to_list()
    assert set(u0["sampling_fingerprint"]).isdisjoint(u1["sampling_fingerprint"])  # another seed, another cache key
    assert set(u0["prompt_hash"]).isdisjoint(u1["prompt_hash"])
    assert u0["text"].to_list() != u1["text"].to_list()  # a random tiny model samples other words
    stats = json.loads((second.llm / "stats.json").read_text())
    assert first["generated"] == stats["generated"] == first["unique_prompts"]
    marker = json.loads((paths.llm_generations / "generations.json").read_text())
    assert marker == {"generations": 2, "sampling_seeds": [0, s.llm.for_generation(1).sampling.seed]}
    again = generate(parse_settings(llm_params(tiny_llama, "transformers")), DATASET, paths.root)
    assert again["generated"] == 0 and outputs(paths)[0].equals(u0)  # generation 0 is the one-generation run
    assert not second.llm.exists() and (paths.llm_generations / "generations.json").exists()


def test_missing_prepared_data_names_the_stage_to_run(tmp_path, tiny_llama):
    with pytest.raises(FileNotFoundError, match=r"users.parquet.*dvc repro prepare@ml-100k"):
        run_stage(llm_params(tiny_llama), DatasetPaths(DATASET, tmp_path))


def test_domain_without_template_is_a_clear_error(paths, tiny_llama):
    params = llm_params(tiny_llama, "transformers", f"dataset.{DATASET}.domain=podcast")
    with pytest.raises(ValueError, match="'podcast' has no item template"):
        run_stage(params, paths)


# ---------------------------------------------------------------- structured outputs


def test_structured_outputs_are_readable_json_of_the_dataset_categories_cached_apart(paths, tmp_path, tiny_llama, vllm_backend):
    free = run_stage(llm_params(tiny_llama, "vllm"), paths, vllm_backend)
    params = structured_params(tmp_path, tiny_llama)
    summary = run_stage(params, paths, vllm_backend)
    assert summary["cache_hits"] == 0 and summary["generated"] == free["unique_prompts"]  # distinct keys
    assert summary["setting"]["structured"] is True and set(summary["setting"]["schemas"]) == {"user", "item"}
    users, items = outputs(paths)
    assert set(users["setting"]) == set(items["setting"]) == {"structured"}
    categories = set(pl.read_parquet(paths.prepared / "items.parquet")["categories"].explode().drop_nulls())
    ok = users.filter(pl.col("status") == "ok")
    assert ok.height > users.height // 2  # the grammar makes even random weights answer in the schema
    for raw, text in zip(ok["raw"], ok["text"]):
        value = json.loads(raw)
        assert set(value["liked"]) <= categories and 1 <= len(value["liked"]) <= 2
        assert text == f"likes: {', '.join(dict.fromkeys(value['liked']))}; note: {value['note']}"
    assert users["schema_fingerprint"].n_unique() == 1 and items["schema_fingerprint"][0] != users["schema_fingerprint"][0]

    # Both settings live side by side in the cache: switching back (or forth) generates nothing.
    assert run_stage(llm_params(tiny_llama, "vllm"), paths, vllm_backend)["generated"] == 0
    assert set(outputs(paths)[0]["setting"]) == {"free"}
    assert run_stage(params, paths, vllm_backend)["generated"] == 0


def test_structured_answers_cut_by_the_token_limit_are_degenerate_and_retried(paths, tmp_path, tiny_llama, vllm_backend):
    keep_users(paths, 4)
    params = structured_params(tmp_path, tiny_llama, "llm.sampling.max_new_tokens=3", "llm.quality.max_retries=2")
    summary = run_stage(params, paths, vllm_backend)
    users, items = outputs(paths)
    both = pl.concat([users.drop("user_id"), items.drop("item_id")])
    assert set(both["status"]) == {"degenerate"} and set(both["attempts"]) == {3}
    assert set(both["finish_reason"]) == {"length"} and (both["raw"] == both["text"]).all()
    assert summary["schema_violations"] == 3 * summary["unique_prompts"]
    assert summary["echo"]["user"]["share_truncated"] == 1.0


def test_transformers_answers_under_the_same_schema(paths, tmp_path, tiny_llama):
    keep_users(paths, 4)
    summary = run_stage(structured_params(tmp_path, tiny_llama, backend="transformers"), paths)
    users, items = outputs(paths)
    ok = items.filter(pl.col("status") == "ok")
    assert ok.height > items.height // 2 and summary["schema_violations"] < summary["unique_prompts"]
    categories = set(pl.read_parquet(paths.prepared / "items.parquet")["categories"].explode().drop_nulls())
    for raw in ok["raw"]:
        value = json.loads(raw)
        assert raw == json.dumps(value, separators=(",", ":"), ensure_ascii=False)  # compact, as vLLM's
        assert set(value["genres"]) <= categories


def test_structured_outputs_without_a_grammar_engine_are_refused_up_front(paths, tiny_llama, monkeypatch):
    from ur4rec.llm.backends.hf_backend import TransformersBackend

    monkeypatch.setattr(TransformersBackend, "supports_structured", False)  # as where xgrammar is not installed
    params = llm_params(tiny_llama, "transformers", "llm.structured=true")
    with pytest.raises(GenerationError, match=r"llm.structured .*transformers.*xgrammar.*llm.backend=vllm") as err:
        run_stage(params, paths)
    assert "\n" not in str(err.value)
    assert not (paths.llm / "user_preferences.parquet").exists()


def test_the_echo_columns_measure_the_prompt_data_block(paths, tiny_llama):
    """An output that copies a user's history scores 1 and repeats every title; one in its own words 0."""
    cfg = llm_config(llm_params(tiny_llama, "transformers"))
    backend = make_backend(cfg)  # renders prompts with the tokenizer only; no model is loaded
    users, items = read_prepared(paths)
    jobs = [j for j in build_jobs(backend, cfg, "movie", users, items) if j.kind == "user" and len(j.titles) >= 3]
    copied, own = jobs[0], jobs[1]
    listing = copied.data[copied.data.index("Movies watched:"):]
    assert "Write one concise paragraph" in copied.prompt and "Write one concise paragraph" not in copied.data
    cache = LLMCache(paths.root / "cache")
    base = {"n_prompt_tokens": 1, "n_output_tokens": 1, "finish_reason": "stop", "status": "ok", "attempts": 1,
            "model": copied.model, "sampling_fingerprint": copied.sampling, "seed": 0, "created_at": 0.0}
    cache.append([{**base, "key": copied.key, "prompt": copied.prompt, "text": listing},
                  {**base, "key": own.key, "prompt": own.prompt, "text": "Enjoys quiet, thoughtful stories about families."}])
    table = {r["user_id"]: r for r in output_table([copied, own], "user", cache, {}, cfg).to_pylist()}
    assert table[copied.id]["echo_share"] == 1.0 and table[copied.id]["titles_repeated"] == len(set(copied.titles))
    assert table[own.id]["echo_share"] == 0.0 and table[own.id]["titles_repeated"] == 0
