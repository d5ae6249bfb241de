"""kill -9 in the middle of generation, rerun: nothing flushed is generated again, no duplicate, no corrupt shard."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pyarrow.parquet as pq
import pytest
import yaml

from tests.conftest import REPO_ROOT
from tests.llm.helpers import DATASET, copy_prepared, llm_params, run_stage
from ur4rec.llm.cache import LLMCache
from ur4rec.paths import cache_dir

pytestmark = pytest.mark.slow


def wait_for_first_shard(proc: subprocess.Popen, folder, timeout: float = 180):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ""
            pytest.fail(f"generation ended (rc {proc.returncode}) before it could be killed:\n{out[-3000:]}")
        if folder.exists() and any(not p.name.startswith(".") for p in folder.glob("*.parquet")):
            return
        time.sleep(0.02)
    proc.kill()
    pytest.fail("no cache shard appeared in time")


def test_kill_9_after_a_flush_then_rerun_finishes_without_regenerating(tmp_path, prepared, tiny_llama, vllm_backend):
    paths = copy_prepared(prepared, tmp_path / "data")
    # transformers starts fast; small batches and flushes land the first shard long before the end.
    params = llm_params(tiny_llama, "transformers", "llm.batch_size=2", "llm.flush_every=2")
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(params))
    env = dict(os.environ, UR4REC_DATA=str(paths.root), PYTHONPATH=str(REPO_ROOT))
    proc = subprocess.Popen(
        [sys.executable, "-c", "from ur4rec.cli.app import main; main()", "generate", "--dataset", DATASET,
         "--params", str(params_file)],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    folder = cache_dir("llm", paths.root)
    wait_for_first_shard(proc, folder)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    flushed = set(LLMCache(folder).entries)
    assert flushed, "the killed run flushed nothing"
    assert not (paths.llm / "user_preferences.parquet").exists()  # outputs only appear complete

    # The rerun may use another engine: keys hold the model and sampling, not the backend.
    summary = run_stage(llm_params(tiny_llama, "vllm"), paths, vllm_backend)
    assert summary["cache_hits"] == len(flushed) < summary["unique_prompts"]
    assert summary["generated"] == summary["unique_prompts"] - len(flushed)

    shards = LLMCache(folder).shards()
    keys = [k for shard in shards for k in pq.read_table(shard, columns=["key"])["key"].to_pylist()]
    assert len(keys) == len(set(keys)) == summary["unique_prompts"]  # no duplicate, nothing missing
    assert LLMCache(folder).stats().duplicates == 0
