"""The one interface every generation engine implements.

A backend renders chat messages into the exact prompt text it will send (that text is what the cache key
hashes), and turns requests into completions, yielding each as soon as it is done so the caller can flush
outputs to disk while the engine keeps working. Engines start lazily: a run whose prompts are all cached
never loads a model.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Iterable, Iterator

from ur4rec.errors import UserError
from ur4rec.llm.config import LLMConfig
from ur4rec.llm.models import ResolvedModel
from ur4rec.llm.prompts import Messages
from ur4rec.precision import llm_dtype


class GenerationError(UserError, RuntimeError):
    """The engine could not run; the message says which setting to change."""


MEMORY_HINT = (
    "lower llm.batch_size or llm.sampling.max_new_tokens, lower llm.vllm.max_model_len, or raise "
    "llm.vllm.gpu_memory_utilization (GPU) / VLLM_CPU_KVCACHE_SPACE in GiB (CPU); outputs flushed so far "
    "are cached, so rerunning continues where this run stopped"
)


@dataclass(frozen=True)
class Request:
    key: str  # cache key, also the request id
    prompt: str  # rendered prompt text
    messages: Messages
    seed: int
    schema: str | None = None  # JSON schema (canonical JSON) the output must follow; None: free text


@dataclass(frozen=True)
class Completion:
    key: str
    text: str
    n_prompt_tokens: int
    n_output_tokens: int
    finish_reason: str  # stop | length | error
    error: str = ""


class Backend(abc.ABC):
    name: str = "base"
    supports_structured: bool = True  # can constrain decoding to a JSON schema (Request.schema)
    structured_hint: str = ""  # what to install when it cannot

    def __init__(self, cfg: LLMConfig, model: ResolvedModel):
        self._check(cfg)
        self.cfg = cfg
        self.model = model

    def _check(self, cfg: LLMConfig) -> None:
        if cfg.structured and not self.supports_structured:
            fixes = [f for f in (self.structured_hint, "set llm.backend=vllm", "set llm.structured=false") if f]
            raise GenerationError(
                f"llm.structured needs grammar-constrained decoding, which the {self.name} backend lacks here: "
                + ", or ".join(fixes)
            )

    def reconfigure(self, cfg: LLMConfig) -> "Backend":
        """Take new per-run settings (sampling, quality, batching of outputs) without restarting the engine."""
        fixed = ("backend", "model", "revision", "dtype", "batch_size", "vllm", "openai")
        changed = [name for name in fixed if getattr(cfg, name) != getattr(self.cfg, name)]
        if changed:
            raise GenerationError(f"a running {self.name} engine cannot change llm.{', llm.'.join(changed)}; start a new one")
        self._check(cfg)
        self.cfg = cfg
        return self

    @property
    def model_identity(self) -> str:
        """Model part of the cache key: the weights' identity and the numeric precision they run at."""
        return f"{self.model.identity}|{llm_dtype(self.cfg.dtype)}"  # `auto` as resolved on this machine

    @abc.abstractmethod
    def render(self, messages: Messages) -> str:
        """The prompt text for these messages, exactly as the engine will see it."""

    @abc.abstractmethod
    def generate(self, requests: Iterable[Request]) -> Iterator[Completion]:
        """Yield one completion per request, in any order, each as soon as it is finished."""

    def start(self) -> None:
        """Load the engine now (it is otherwise loaded by the first `generate`), so timings exclude it."""

    def close(self) -> None:
        """Release the engine (GPU memory, worker processes)."""


def load_tokenizer(model: ResolvedModel, revision: str = "main"):
    from transformers import AutoTokenizer

    kwargs = {} if model.is_local else {"revision": revision}
    tokenizer = AutoTokenizer.from_pretrained(model.source, **kwargs)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer
