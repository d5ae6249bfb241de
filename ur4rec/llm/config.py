"""The `llm:` params section as typed dataclasses (built with `ur4rec.config.section`)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Mapping

from ur4rec.config import ParamsError, get_path, section
from ur4rec.llm.models import PACKAGED_MODELS, PACKAGED_PREFIX
from ur4rec.llm.prompts import PROMPT_ORDERS

ITEM_TITLES = ("code", "none")  # who names the item in its stored knowledge (llm.item_title)

BACKENDS = ("auto", "vllm", "transformers", "openai", "ray")
ENGINES = ("auto", "vllm", "transformers", "openai")  # what a Ray engine actor runs (llm.ray.engine)
STATUSES = ("ok", "empty", "truncated", "degenerate", "failed")
DTYPES = ("auto", "bfloat16", "float16", "float32")


def generation_seed(seed: int, generation: int) -> int:
    """The sampling seed of generation `generation`: the first is `seed` itself, the others are hashed from
    (seed, generation) through a spawn key, so they share no draw with each other nor with any retry of any of
    them (retries hash (seed, attempt) as entropy: `ur4rec.llm.answer.attempt_seed`)."""
    if generation == 0:
        return seed
    import numpy as np

    return int(np.random.SeedSequence(seed, spawn_key=(generation,)).generate_state(1)[0] % (2**31 - 1))


@dataclass(frozen=True)
class SamplingConfig:
    """What decides the text for a given prompt; every field enters the cache key."""

    temperature: float = 0.6
    top_p: float = 0.9
    top_k: int = 0  # 0 = off
    repetition_penalty: float = 1.0
    max_new_tokens: int = 96
    seed: int = 0

    def __post_init__(self) -> None:
        checks = [
            ("temperature", self.temperature >= 0, ">= 0 (0: greedy)"),
            ("top_p", 0 < self.top_p <= 1, "in (0, 1]"),
            ("top_k", self.top_k >= 0, ">= 0 (0: off)"),
            ("repetition_penalty", self.repetition_penalty > 0, "> 0 (1: off)"),
            ("max_new_tokens", self.max_new_tokens >= 1, ">= 1"),
            ("seed", self.seed >= 0, ">= 0"),
        ]
        for name, ok, rule in checks:
            if not ok:
                raise ParamsError(f"llm.sampling.{name} must be {rule}, got {getattr(self, name)!r}")

    def fingerprint(self) -> str:
        """Short stable hash of the sampling settings, stored next to every output."""
        blob = json.dumps(asdict(self), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


@dataclass(frozen=True)
class VllmConfig:
    tensor_parallel_size: int = 1
    gpu_memory_utilization: float = 0.9
    max_model_len: int = 4096
    enforce_eager: bool = False
    log_stats: bool = False  # vLLM's periodic throughput / prefix-cache log lines and get_metrics()

    def __post_init__(self) -> None:
        if self.tensor_parallel_size < 1 or self.max_model_len < 1:
            raise ParamsError("llm.vllm.tensor_parallel_size and llm.vllm.max_model_len must be >= 1")
        if not 0 < self.gpu_memory_utilization <= 1:
            raise ParamsError(f"llm.vllm.gpu_memory_utilization must be in (0, 1], got {self.gpu_memory_utilization}")


@dataclass(frozen=True)
class OpenAIConfig:
    base_url: str = "http://127.0.0.1:8000/v1"
    # Name of the environment variable holding the key; the key itself never appears in params or logs.
    api_key_env: str = "OPENAI_API_KEY"
    # chat: the server applies the chat template; completions: the prompt is rendered here (needs the tokenizer).
    endpoint: str = "chat"
    served_model_name: str = ""  # defaults to llm.model
    concurrency: int = 8
    timeout_s: float = 300.0
    max_attempts: int = 5
    # A server without authentication (a private `vllm serve`): send no key. Off by default, so an unset key
    # variable is an error before any prompt is sent, not a silent anonymous request.
    keyless: bool = False

    def __post_init__(self) -> None:
        if self.concurrency < 1 or self.max_attempts < 0 or self.timeout_s <= 0:
            raise ParamsError("llm.openai.concurrency must be >= 1, max_attempts >= 0 and timeout_s > 0")
        if not self.api_key_env and not self.keyless:
            raise ParamsError("llm.openai.api_key_env is empty: name the variable holding the key, "
                              "or set llm.openai.keyless=true for a server without authentication")


@dataclass(frozen=True)
class RayConfig:
    """`llm.backend: ray` (and `llm.data_parallel_size` > 1): engine actors on a Ray cluster (ur4rec.llm.cluster)."""

    address: str = ""  # empty: join the local Ray started by `ray start`, else start one; `auto`; ray://host:10001
    num_workers: int = 1  # engine actors, each loading the model once
    num_gpus_per_worker: float | None = None  # None: llm.vllm.tensor_parallel_size where the cluster has GPUs, else 0
    num_cpus_per_worker: float = 1.0  # CPUs Ray reserves per actor (its torch / vLLM-CPU thread count on CPU)
    engine: str = "auto"  # which of the backends each actor runs: auto | vllm | transformers | openai
    batch_size: int = 64  # prompts per Ray Data batch: one actor call, one cache shard


@dataclass(frozen=True)
class TemplatesConfig:
    user: str = "templates/user_preference.yaml"
    item: dict[str, str] = field(
        default_factory=lambda: {
            "movie": "templates/item_movie.yaml",
            "game": "templates/item_game.yaml",
            "book": "templates/item_book.yaml",
            "product": "templates/item_product.yaml",
        }
    )


def _per_domain(kind: str) -> dict[str, str]:
    return {d: f"templates/{kind}_{d}.schema.yaml" for d in ("movie", "game", "book", "product")}


@dataclass(frozen=True)
class SchemasConfig:
    """Structured outputs (`llm.structured`): one schema file per kind and item domain, and the category enum."""

    user: dict[str, str] = field(default_factory=lambda: _per_domain("user"))
    item: dict[str, str] = field(default_factory=lambda: _per_domain("item"))
    max_categories: int = 40  # the enum holds at most this many of the dataset's categories, most frequent first
    min_category_items: int = 2  # categories on fewer items stay out of the enum (ml-100k's `unknown`)


@dataclass(frozen=True)
class QualityConfig:
    # Statuses worth another try with a new seed; `truncated` is off by default because at small
    # max_new_tokens almost every answer hits the limit and retrying would only multiply the cost.
    retry_on: list[str] = field(default_factory=lambda: ["empty", "degenerate"])
    max_retries: int = 2
    min_chars: int = 8  # shorter (after stripping) counts as empty
    ngram: int = 4
    min_distinct_ngram_ratio: float = 0.35  # below: the text is looping over the same phrases
    min_words_for_ngram_check: int = 24

    def __post_init__(self) -> None:
        for name in ("max_retries", "min_chars", "min_words_for_ngram_check"):
            if getattr(self, name) < 0:
                raise ParamsError(f"llm.quality.{name} must be >= 0, got {getattr(self, name)}")
        if self.ngram < 1:
            raise ParamsError(f"llm.quality.ngram must be >= 1, got {self.ngram}")
        if not 0 <= self.min_distinct_ngram_ratio <= 1:
            raise ParamsError(f"llm.quality.min_distinct_ngram_ratio must be in [0, 1], got {self.min_distinct_ngram_ratio}")


@dataclass(frozen=True)
class LLMConfig:
    backend: str = "auto"
    model: str = "packaged:smollm2"  # packaged:NAME, an HF id, or a local HF folder
    revision: str = "main"  # only for HF ids
    dtype: str = "bfloat16"  # auto | bfloat16 | float16 | float32
    batch_size: int = 64  # transformers: prompts per generate call; vLLM: max concurrent sequences
    flush_every: int = 64  # outputs kept in memory before they are written to the cache
    # >1: that many Ray engine actors split the uncached prompts (an alias of llm.ray.num_workers for the
    # local backend), each on its own tensor_parallel_size GPUs.
    data_parallel_size: int = 1
    cache_dir: str = ""  # empty: data/cache/llm
    # true: outputs follow a JSON schema per kind (ur4rec.llm.structured); false: free text, as in the paper.
    structured: bool = False
    prompt_order: str = "instruction_first"  # instruction_first | data_first (ur4rec.llm.prompts.compose)
    # code: the stored item knowledge starts with the item's title ("<title>. <answer>"), written by code, so an
    # item's vector names its item whatever the model wrote; none: the model's answer alone (the paper's s_i).
    item_title: str = "code"
    # Independent generations of every text: run seed k reads generation k mod this (ur4rec.runs.settings), so
    # seed-to-seed variance includes the texts'. Generation g draws with `generation_seed(sampling.seed, g)`.
    generations: int = 1
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    vllm: VllmConfig = field(default_factory=VllmConfig)
    openai: OpenAIConfig = field(default_factory=OpenAIConfig)
    ray: RayConfig = field(default_factory=RayConfig)
    templates: TemplatesConfig = field(default_factory=TemplatesConfig)
    schemas: SchemasConfig = field(default_factory=SchemasConfig)
    quality: QualityConfig = field(default_factory=QualityConfig)

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ParamsError(f"llm.backend: {self.backend!r} is not one of {BACKENDS}")
        if self.model.startswith(PACKAGED_PREFIX) and self.model[len(PACKAGED_PREFIX):] not in PACKAGED_MODELS:
            known = ", ".join(PACKAGED_PREFIX + m for m in PACKAGED_MODELS)
            raise ParamsError(f"llm.model: unknown packaged model {self.model!r}; known: {known}")
        if not self.model:
            raise ParamsError("llm.model is empty: name packaged:smollm2, an HF id or a local folder")
        if self.dtype not in DTYPES:
            raise ParamsError(f"llm.dtype: {self.dtype!r} is not one of {DTYPES}")
        bad = sorted(set(self.quality.retry_on) - set(STATUSES[1:4]))
        if bad:
            raise ParamsError(f"llm.quality.retry_on: unknown status(es) {bad}; choose from {STATUSES[1:4]}")
        if self.openai.endpoint not in ("chat", "completions"):
            raise ParamsError(f"llm.openai.endpoint: {self.openai.endpoint!r} is not 'chat' or 'completions'")
        if self.item_title not in ITEM_TITLES:
            raise ParamsError(f"llm.item_title: {self.item_title!r} is not one of {ITEM_TITLES}")
        if self.prompt_order not in PROMPT_ORDERS:
            raise ParamsError(f"llm.prompt_order: {self.prompt_order!r} is not one of {PROMPT_ORDERS}")
        if self.schemas.max_categories < 1:
            raise ParamsError("llm.schemas.max_categories must be >= 1")
        for name in ("batch_size", "flush_every", "data_parallel_size", "generations"):
            if getattr(self, name) < 1:
                raise ParamsError(f"llm.{name} must be >= 1")
        self._check_ray()

    def _check_ray(self) -> None:
        r = self.ray
        if r.engine not in ENGINES:
            raise ParamsError(f"llm.ray.engine: {r.engine!r} is not one of {ENGINES}")
        if r.num_workers < 1 or r.batch_size < 1:
            raise ParamsError("llm.ray.num_workers and llm.ray.batch_size must be >= 1")
        if (r.num_gpus_per_worker is not None and r.num_gpus_per_worker < 0) or r.num_cpus_per_worker < 0:
            raise ParamsError("llm.ray.num_gpus_per_worker and llm.ray.num_cpus_per_worker must be >= 0")
        if self.backend == "ray" and self.data_parallel_size > 1:
            raise ParamsError("with llm.backend=ray the actor count is llm.ray.num_workers; leave llm.data_parallel_size at 1")

    def for_generation(self, generation: int) -> "LLMConfig":
        """These settings drawing generation `generation` (0: as they are)."""
        seed = generation_seed(self.sampling.seed, generation)
        return replace(self, sampling=replace(self.sampling, seed=seed))

    @property
    def on_ray(self) -> bool:
        """Whether generation runs on Ray engine actors: `llm.backend: ray`, or its alias `data_parallel_size` > 1."""
        return self.backend == "ray" or self.data_parallel_size > 1

    @property
    def ray_workers(self) -> int:
        return self.ray.num_workers if self.backend == "ray" else self.data_parallel_size


def llm_config(params: Mapping[str, Any]) -> LLMConfig:
    """The typed `llm:` section (defaults where params.yaml is silent)."""
    return section(LLMConfig, get_path(params, "llm", {}), "llm")


def dataset_domain(params: Mapping[str, Any], dataset: str) -> str:
    return str(get_path(params, f"dataset.{dataset}.domain"))
