"""Two generations on one cache folder split the prompts between them instead of both answering all of them."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import polars as pl
import pyarrow.parquet as pq
import pytest

from tests.conftest import REPO_ROOT
from tests.llm.helpers import copy_prepared, llm_params

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def test_two_generations_on_one_cache_answer_each_prompt_once(tmp_path, prepared, tiny_llama):
    cache = tmp_path / "shared-cache" / "llm"
    # Chunks of 4 x 4 = 16 prompts: the 36 prompts take three claims, so both workers get some.
    params = llm_params(tiny_llama, "transformers", "llm.batch_size=4", "llm.flush_every=4", f"llm.cache_dir={cache}")
    params_file = tmp_path / "params.json"
    params_file.write_text(json.dumps(params))
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    roots = [tmp_path / name for name in ("a", "b")]
    for root in roots:
        copy_prepared(prepared, root)
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    procs = [subprocess.Popen([sys.executable, "-m", "tests.faults.generate_worker", str(params_file), str(root),
                               str(barrier), root.name, "2"], cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for root in roots]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=800)
        assert proc.returncode == 0, err[-3000:]
        results.append(json.loads(out.strip().splitlines()[-1]))

    prompts = results[0]["unique_prompts"]
    keys = [k for shard in cache.glob("*.parquet") for k in pq.read_table(shard, columns=["key"])["key"].to_pylist()]
    assert len(keys) == len(set(keys)) == prompts  # each prompt answered once, none twice
    assert sum(r["generated"] for r in results) == prompts
    assert all(r["generated"] > 0 for r in results)  # the work was split, not serialised
    assert sum(r["cache_hits"] for r in results) == prompts  # what one answered the other found
    a, b = (pl.read_parquet(root / "ml-100k" / "llm" / "user_preferences.parquet") for root in roots)
    assert a.select("user_id", "text").equals(b.select("user_id", "text"))
    assert not list(cache.with_name("llm.claims").glob("*.claim"))  # claims released on the way out
