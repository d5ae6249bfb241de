"""Data parallelism: worker processes split the uncached prompts and meet in the shared cache."""

from __future__ import annotations

import os

import polars as pl
import pytest

from tests.llm.helpers import copy_prepared, llm_params, run_stage
from ur4rec.llm.cache import LLMCache
from ur4rec.llm.parallel import device_groups
from ur4rec.paths import cache_dir

pytestmark = pytest.mark.slow


def test_two_workers_share_the_work_and_the_run_completes(tmp_path, prepared, tiny_llama, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # two workers on a small machine
    paths = copy_prepared(prepared, tmp_path / "data")
    pl.read_parquet(paths.prepared / "users.parquet").head(4).write_parquet(paths.prepared / "users.parquet")
    params = llm_params(tiny_llama, "transformers", "llm.data_parallel_size=2", "llm.sampling.max_new_tokens=4")
    summary = run_stage(params, paths)
    assert summary["generated"] == summary["unique_prompts"] and summary["cache_hits"] == 0
    writers = {shard.name.split("-")[1] for shard in LLMCache(cache_dir("llm", paths.root)).shards()}
    assert len(writers) == 2 and str(os.getpid()) not in writers  # both workers wrote, the parent did not
    users = pl.read_parquet(paths.llm / "user_preferences.parquet")
    assert users.height == 4 and (users["n_output_tokens"] > 0).all()


def test_gpu_groups_follow_the_visible_devices(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    assert device_groups(2, 2, None) == ["0,1", "2,3"]
    assert device_groups(2, 1, "5,7") == ["5", "7"]
    with pytest.raises(ValueError, match="needs 4 GPUs, 2 visible"):
        device_groups(2, 2, "5,7")
