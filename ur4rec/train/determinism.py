"""One call that makes a process repeatable: seeds, thread count, deterministic kernels.

Same code, params and seed give bit-identical weights and metrics on the same machine. Across machines the
float reduction order of the CPU kernels (vector width, thread count) may differ; docs/evaluation.md gives
the measured drift.
"""

from __future__ import annotations

import os
import random

import numpy as np
import torch


def make_repeatable(seed: int, threads: int = 0, deterministic: bool = True) -> None:
    """Seed Python, NumPy and torch; fix torch's CPU threads (0: leave torch's default); and ask torch for
    deterministic algorithms (an op without one then fails loudly instead of varying silently)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if threads > 0:
        torch.set_num_threads(threads)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=False)
        # Deterministic mode also fills every new tensor with NaN, a guard against kernels that read memory they
        # never wrote; the fill was the largest single cost of a training step on CPU. Repeatability is what
        # the tests check instead: they rerun stages and compare bit for bit.
        torch.utils.deterministic.fill_uninitialized_memory = False
