"""Data parallelism over many GPUs: N engine processes split the uncached prompts of one run.

Each worker is `python -m ur4rec.llm.worker`, sees only its own `tensor_parallel_size` GPUs through
CUDA_VISIBLE_DEVICES, answers one contiguous block of the uncached prompts and writes its outputs to the
shared cache (unique shard names, so workers never collide). The parent then finds everything cached and
writes the stage outputs. A worker that dies loses only its unflushed outputs; the parent generates
whatever is still missing itself, so the run still completes.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from ur4rec.llm.cache import LLMCache
from ur4rec.llm.config import LLMConfig
from ur4rec.paths import DatasetPaths

log = logging.getLogger(__name__)


def device_groups(world: int, per_worker: int, visible: str | None) -> list[str | None]:
    """CUDA_VISIBLE_DEVICES for each worker: consecutive groups of the visible GPUs (None without CUDA)."""
    import torch

    if not torch.cuda.is_available():
        return [None] * world
    ids = visible.split(",") if visible else [str(i) for i in range(torch.cuda.device_count())]
    if len(ids) < world * per_worker:
        raise ValueError(
            f"llm.data_parallel_size={world} x llm.vllm.tensor_parallel_size={per_worker} needs "
            f"{world * per_worker} GPUs, {len(ids)} visible"
        )
    return [",".join(ids[r * per_worker : (r + 1) * per_worker]) for r in range(world)]


def worker_command(config_file: Path, domain: str, paths: DatasetPaths, rank: int, world: int) -> list[str]:
    return [sys.executable, "-m", "ur4rec.llm.worker", "--config", str(config_file), "--domain", domain,
            "--dataset", paths.name, "--root", str(paths.root), "--rank", str(rank), "--world", str(world)]


def run_workers(cfg: LLMConfig, domain: str, paths: DatasetPaths, cache: LLMCache) -> tuple[int, float]:
    """Run the workers to completion; returns (prompts they answered, wall seconds)."""
    world = cfg.data_parallel_size
    before = len(cache)
    started = time.perf_counter()
    groups = device_groups(world, cfg.vllm.tensor_parallel_size, os.environ.get("CUDA_VISIBLE_DEVICES"))
    with tempfile.TemporaryDirectory(prefix="ur4rec-dp-") as tmp:
        # The typed config travels as YAML of its fields; the worker rebuilds it with ur4rec.config.section.
        config_file = Path(tmp) / "llm.yaml"
        config_file.write_text(yaml.safe_dump(dataclasses.asdict(cfg), sort_keys=False), encoding="utf-8")
        procs = []
        for rank, devices in enumerate(groups):
            env = dict(os.environ)
            if devices is not None:
                env["CUDA_VISIBLE_DEVICES"] = devices
            procs.append(subprocess.Popen(worker_command(config_file, domain, paths, rank, world), env=env))
        codes = [p.wait() for p in procs]
    failed = [rank for rank, code in enumerate(codes) if code != 0]
    if failed:
        log.warning("data-parallel worker(s) %s failed; generating what they left in this process", failed)
    cache.reload()
    return len(cache) - before, time.perf_counter() - started
