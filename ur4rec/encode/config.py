"""The `encoder:` params section as a typed config, validated once so a typo fails before any model loads."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ur4rec.config import ParamsError
from ur4rec.precision import auto_precision

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
STORAGE_DTYPES = ("fp32", "fp16")
POOLINGS = ("mean", "cls")
POLICIES = ("zero", "fallback_text", "mean")
# Every status the generation stage may write (docs/architecture.md); anything else is a contract breach.
GENERATION_STATUSES = ("ok", "empty", "truncated", "degenerate", "failed")


@dataclass(frozen=True)
class EncoderConfig:
    """How texts become vectors, and how the vectors are stored.

    Only `model`, `pooling`, `max_length`, `dtype` and `normalize` change the vectors, so only they enter the
    encoder fingerprint (and with it the cache key); batch sizes and device change speed, not results.
    """

    model: str = "packaged:minilm"
    pooling: str = "mean"
    max_length: int = 256
    dtype: str = "auto"  # auto: bf16 where native (ur4rec.precision), else fp32 on a CPU, fp16 on a GPU
    normalize: bool = False
    batch_size: int = 512
    batch_tokens: int = 8192
    device: str = "cpu"
    threads: int = 0
    storage_dtype: str = "fp32"
    shard_mb: int = 64
    on_bad_generation: str = "fallback_text"
    bad_statuses: list[str] = field(default_factory=lambda: ["empty", "degenerate", "failed"])
    cache: bool = True

    def __post_init__(self) -> None:
        _choice("pooling", self.pooling, POOLINGS)
        _choice("dtype", self.dtype, (*DTYPES, "auto"))
        _choice("storage_dtype", self.storage_dtype, STORAGE_DTYPES)
        _choice("on_bad_generation", self.on_bad_generation, POLICIES)
        for status in self.bad_statuses:
            _choice("bad_statuses[]", status, GENERATION_STATUSES)
        if "ok" in self.bad_statuses:
            raise ParamsError("encoder.bad_statuses: 'ok' cannot be a bad status")
        for name in ("max_length", "batch_size", "batch_tokens", "shard_mb"):
            if getattr(self, name) < 1:
                raise ParamsError(f"encoder.{name}: must be >= 1, got {getattr(self, name)}")
        if self.threads < 0:
            raise ParamsError(f"encoder.threads: must be >= 0 (0: torch's default), got {self.threads}")

    @property
    def resolved_dtype(self) -> str:
        """`dtype` as computed on this machine: `auto` is bf16 only where it is native (emulated bf16 encoded
        50× slower than fp32 on an AVX2 CPU); part of the encoder fingerprint, so of every cache key."""
        if self.dtype != "auto":
            return self.dtype
        return auto_precision(self.device in ("cuda", "auto") and torch.cuda.is_available())

    @property
    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.resolved_dtype]

    @property
    def storage_torch_dtype(self) -> torch.dtype:
        return DTYPES[self.storage_dtype]


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ParamsError(f"encoder.{name}: {value!r} is not one of {list(allowed)}")
