"""Which reduced precision this machine computes natively, for the settings that say `auto`.

bf16 pays off only where the hardware has it: CUDA devices with bf16, and CPUs with AVX512-BF16 or AMX. On a
CPU without them (AVX2 only, for instance many AMD EPYC and older Intel parts) PyTorch and vLLM emulate it, and
a bf16 matmul there ran 25× slower than fp32, vLLM's bf16 SmolLM2 4.5× slower (docs/benchmarks.md). So `auto`
means bf16 where native and fp32 elsewhere; an explicit setting is always obeyed.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@lru_cache(maxsize=1)
def cpu_native_bf16() -> bool:
    """True when /proc/cpuinfo lists a bf16 instruction set (False where it cannot be read)."""
    try:
        flags = set(Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").split())
    except OSError:
        return False
    return any(flag in flags for flag in NATIVE_BF16_FLAGS)


def native_bf16(device_type: str = "cpu") -> bool:
    """bf16 is native on this device type (`cpu` or `cuda`)."""
    if device_type == "cuda":
        import torch

        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return cpu_native_bf16()


def auto_precision(on_gpu: bool) -> str:
    """What `auto` resolves to, for every setting that has it: bf16 where native, else fp16 on a GPU and fp32
    on a CPU."""
    if on_gpu:
        return "bf16" if native_bf16("cuda") else "fp16"
    return "bf16" if native_bf16("cpu") else "fp32"


ENGINE_NAMES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}


def llm_dtype(name: str) -> str:
    """`llm.dtype` as the engine gets it: `auto` resolved (`auto_precision`) into the engine's names; any
    other value as written."""
    if name != "auto":
        return name
    import torch

    return ENGINE_NAMES[auto_precision(torch.cuda.is_available())]
