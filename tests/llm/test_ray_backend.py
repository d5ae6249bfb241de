"""The Ray backend (`llm.backend: ray`, and `llm.data_parallel_size` > 1): engine actors on a local Ray
cluster answer the uncached prompts into the shared cache, as the in-process engine would."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import polars as pl
import pytest

from tests.llm.helpers import copy_prepared, few_prompts, llm_params, run_stage, structured_params
from ur4rec.config import ParamsError
from ur4rec.llm.cache import LLMCache
from ur4rec.llm.cluster import Collector, RayMissing, RayResources, actor_gpus, check_resources
from ur4rec.llm.config import llm_config
from ur4rec.paths import cache_dir

OUTPUTS = ("user_preferences.parquet", "item_knowledge.parquet")
# One prompt per generate call: the transformers engine then seeds each prompt alone, so its text does not
# depend on which batch, actor or process answers it.
SAME_TEXTS = ("llm.batch_size=1", "llm.sampling.max_new_tokens=6")
COMPARED = ("prompt_hash", "text", "status", "attempts", "finish_reason", "n_prompt_tokens", "n_output_tokens", "model")


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.data")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def _table(paths, name: str) -> pl.DataFrame:
    frame = pl.read_parquet(paths.llm / name)
    return frame.select(frame.columns[0], *COMPARED).sort(frame.columns[0])


@pytest.mark.slow
def test_two_actors_answer_what_the_interrupted_run_left_as_the_local_engine_does(tmp_path, prepared, tiny_llama, ray_cluster):
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each actor runs (one CPU each); spinning threads crawl on a busy machine
    try:
        ref_paths = few_prompts(prepared, tmp_path / "local", n_users=3)
        run_stage(llm_params(tiny_llama, "transformers", *SAME_TEXTS), ref_paths)
    finally:
        torch.set_num_threads(threads)
    entries = sorted(LLMCache(cache_dir("llm", ref_paths.root)).entries.values(), key=lambda r: r["key"])
    n, left = len(entries), len(entries[1::2])
    assert n >= 10

    # An interrupted run left half of the outputs in the cache: the Ray run generates the other half only.
    paths = copy_prepared(ref_paths, tmp_path / "ray")
    LLMCache(cache_dir("llm", paths.root)).append(entries[::2])
    params = llm_params(tiny_llama, "ray", *SAME_TEXTS, "llm.ray.engine=transformers", "llm.ray.num_workers=2",
                        "llm.ray.batch_size=2")
    summary = run_stage(params, paths)
    assert summary["backend"] == "ray" and summary["ray"]["workers"] == 2 and summary["ray"]["engine"] == "transformers"
    assert summary["cache_hits"] == n - left and summary["generated"] == left and summary["unique_prompts"] == n
    # The actors wrote every batch into the cache themselves (the driver had nothing to write); the run's
    # shards are merged into one at its end, beside the interrupted run's.
    assert summary["ray"]["batches"] == -(-left // 2) and summary["ray"]["batches_cached_by_driver"] == 0
    cache = LLMCache(cache_dir("llm", paths.root))
    assert len(cache) == n and len(cache.shards()) == 2
    # Same statuses, texts and token counts as the in-process engine, for every user and item.
    for name in OUTPUTS:
        assert _table(paths, name).equals(_table(ref_paths, name)), name

    # Run again through the alias (the local backend on 2 actors): same cache keys, everything cached,
    # no Ray job.
    alias = llm_params(tiny_llama, "transformers", *SAME_TEXTS, "llm.data_parallel_size=2")
    again = run_stage(alias, paths)
    assert again["backend"] == "ray" and again["ray"] == {"workers": 2, "engine": "transformers", "batches": 0,
                                                          "batches_cached_by_driver": 0}
    assert again["generated"] == 0 and again["cache_hits"] == n
    for name in OUTPUTS:
        assert _table(paths, name).equals(_table(ref_paths, name)), name


@pytest.mark.slow
def test_a_failed_ray_job_leaves_its_prompts_to_this_process(tmp_path, prepared, tiny_llama, ray_cluster, caplog):
    """Actors whose engine cannot start fail the Ray job; the stage warns with the reason and goes on here
    (where this engine fails the same way, with its own one-line error)."""
    from ur4rec.llm.backends import GenerationError

    paths = copy_prepared(prepared, tmp_path / "data")
    # A model folder without its weights (a bad setting such as llm.dtype=float8 is refused before any work).
    broken = tmp_path / "weightless"
    shutil.copytree(tiny_llama, broken, ignore=shutil.ignore_patterns("*.safetensors"))
    params = llm_params(broken, "ray", "llm.ray.engine=transformers", "llm.ray.num_workers=2")
    with pytest.raises(GenerationError, match=f"transformers could not load {broken}"):
        run_stage(params, paths)
    warning = [r.getMessage() for r in caplog.records if "the Ray job stopped" in r.getMessage()]
    assert len(warning) == 1 and "(GenerationError: transformers could not load" in warning[0], warning
    assert str(broken) in warning[0]
    assert "\n" not in warning[0]


def test_actors_run_the_drivers_engine_on_the_same_model(tiny_llama):
    """`llm.backend: ray` runs llm.ray.engine; the alias runs the local backend; a local model path is absolute."""
    from ur4rec.llm.backends import make_backend
    from ur4rec.llm.cluster import actor_config

    for params in (llm_params(tiny_llama, "ray", "llm.ray.engine=transformers"),
                   llm_params(tiny_llama, "transformers", "llm.data_parallel_size=2")):
        cfg = llm_config(params)
        driver = make_backend(cfg)
        actor = actor_config(cfg, driver.name)
        assert driver.name == "transformers" and actor.backend == "transformers" and not actor.on_ray
        assert Path(actor.model).is_absolute() and make_backend(actor).model_identity == driver.model_identity


def test_jobs_reach_the_actors_whole_structured_outputs_included(tmp_path, prepared, tiny_llama):
    """What travels to an actor (pickled by Ray) rebuilds the jobs: prompt, messages, key, output schema."""
    import numpy as np

    cloudpickle = pytest.importorskip("ray.cloudpickle")
    from ur4rec.llm.backends import make_backend
    from ur4rec.llm.cluster import answering_schemas, job_row, portable_schemas, row_jobs
    from ur4rec.llm.jobs import build_jobs, read_prepared

    cfg = llm_config(structured_params(tmp_path, tiny_llama, backend="transformers"))
    jobs = build_jobs(make_backend(cfg), cfg, "movie", *read_prepared(prepared))
    schemas = answering_schemas(cloudpickle.loads(cloudpickle.dumps(portable_schemas(jobs))))
    rows = [job_row(j) for j in jobs]
    batch = {name: np.array([r[name] for r in rows]) for name in rows[0]}  # as Ray Data hands a batch over
    for job, back in zip(jobs, row_jobs(batch, schemas), strict=True):
        assert (back.kind, back.id, back.prompt, back.key) == (job.kind, job.id, job.prompt, job.key)
        assert [dict(m) for m in back.messages] == [dict(m) for m in job.messages]
        assert back.schema.fingerprint == job.schema.fingerprint and back.schema.grammar == job.schema.grammar


@pytest.mark.parametrize("override", ["llm.backend=ray", "llm.data_parallel_size=2"])
def test_without_ray_the_stage_stops_before_any_work_with_one_line(tmp_path, prepared, tiny_llama, monkeypatch, override):
    monkeypatch.setitem(sys.modules, "ray", None)  # Ray is installed here; hide it as a machine without it would
    monkeypatch.setitem(sys.modules, "ray.data", None)
    paths = copy_prepared(prepared, tmp_path / "data")
    with pytest.raises(RayMissing) as err:
        run_stage(llm_params(tiny_llama, "transformers", override), paths)
    message = str(err.value)
    assert "\n" not in message and "pip install 'ray[data]'" in message and override.split(".", 1)[1] in message
    assert not paths.llm.exists() and not cache_dir("llm", paths.root).exists()


def _record(key: str, status: str = "ok") -> dict:
    return {"key": key, "model": "m", "sampling_fingerprint": "s", "prompt": "p", "text": "t", "finish_reason": "stop",
            "status": status, "attempts": 1, "seed": 0, "n_prompt_tokens": 3, "n_output_tokens": 2}


def test_the_driver_caches_what_an_actor_wrote_out_of_its_sight(tmp_path):
    """On a cluster whose nodes do not share the cache folder, an actor's shard is not on the driver's disk."""
    import json

    cache = LLMCache(tmp_path / "cache")
    visible = cache.append([_record("a")])
    collector = Collector(cache)
    rows = [
        {"shard": str(visible), "records": json.dumps([_record("a")])},
        {"shard": str(tmp_path / "elsewhere" / "x.parquet"), "records": json.dumps([_record("b"), _record("c", "failed")])},
    ]
    for row in rows:
        collector.add({**row, "retried": 1, "schema_violations": 0, "output_tokens": 5})
    collector.close()
    run = collector.run
    assert (run.batches, run.cached_by_driver) == (2, 1)
    assert (run.stats.generated, run.stats.retried, run.stats.output_tokens) == (3, 2, 10)
    assert set(run.errors) == {"c"}  # refused prompts are not cached
    assert sorted(cache.entries) == ["a", "b"] and len(cache.shards()) == 1  # merged at the end


def test_actor_resources_follow_the_cluster():
    cfg = llm_config({"llm": {"backend": "ray", "vllm": {"tensor_parallel_size": 2}}})
    assert actor_gpus(cfg, "vllm", {"CPU": 16, "GPU": 8}) == 2
    assert actor_gpus(cfg, "transformers", {"CPU": 16, "GPU": 8}) == 1
    assert actor_gpus(cfg, "vllm", {"CPU": 16}) == 0 and actor_gpus(cfg, "openai", {"GPU": 8}) == 0
    assert actor_gpus(llm_config({"llm": {"ray": {"num_gpus_per_worker": 0.5}}}), "vllm", {"GPU": 1}) == 0.5
    check_resources(4, 1, 2, {"CPU": 4, "GPU": 8})
    with pytest.raises(RayResources, match="need 8 GPUs, the cluster has 4"):
        check_resources(4, 1, 2, {"CPU": 16, "GPU": 4})
    with pytest.raises(RayResources, match="need 3 CPUs, the cluster has 2"):
        check_resources(3, 1, 0, {"CPU": 2})


def test_a_failed_batch_is_reported_by_the_error_inside_rays_wrapper():
    from ur4rec.llm.backends import GenerationError
    from ur4rec.llm.cluster import root_message

    wrapper = RuntimeError("ray::MapWorker.submit() (pid=1)\n  File x, line 1\nTraceback ...")
    wrapper.cause = GenerationError("vLLM failed while generating: out of memory\nTo fix: lower llm.batch_size")
    assert root_message(wrapper) == "GenerationError: vLLM failed while generating: out of memory"
    died = RuntimeError("The actor died\n  File y\nur4rec.llm.backends.base.GenerationError: cannot load m\nTo fix: z")
    died.__cause__ = RuntimeError("")
    assert root_message(died) == "GenerationError: cannot load m"
    udf = RuntimeError("ray::MapWorker.submit()\n  File a\nur4rec.llm.backends.base.GenerationError: vLLM failed: x\n"
                       "To fix: y\n\nThe above exception was the direct cause of the following exception:\n\n"
                       "ray.exceptions.UserCodeException: UDF failed to process a data block.")
    assert root_message(udf) == "GenerationError: vLLM failed: x"


def test_ray_settings_are_checked():
    with pytest.raises(ParamsError, match="llm.ray.num_workers"):
        llm_config({"llm": {"backend": "ray", "data_parallel_size": 2}})
    with pytest.raises(ParamsError, match="llm.ray.engine"):
        llm_config({"llm": {"backend": "ray", "ray": {"engine": "ray"}}})
    assert llm_config({"llm": {"data_parallel_size": 3}}).ray_workers == 3
    assert llm_config({"llm": {"backend": "ray", "ray": {"num_workers": 2}}}).ray_workers == 2
