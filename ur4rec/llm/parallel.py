"""Data parallelism over many GPUs: N engine processes split the uncached prompts of one run.

Each worker is `python -m ur4rec.llm.parallel`, sees only its own `tensor_parallel_size` GPUs through
CUDA_VISIBLE_DEVICES, answers one contiguous block of the uncached prompts and writes its outputs to the
shared cache (unique shard names, so workers never collide). The parent then finds everything cached and
writes the stage outputs. A worker that dies loses only its unflushed outputs; the parent generates
whatever is still missing itself, so the run still completes.
"""

from __future__ import annotations

import argparse
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


def run_workers(cfg: LLMConfig, domain: str, dataset: str, root: Path, cache: LLMCache) -> tuple[int, float]:
    """Run the workers to completion; returns (prompts they answered, wall seconds)."""
    world = cfg.data_parallel_size
    before = len(cache)
    started = time.perf_counter()
    groups = device_groups(world, cfg.vllm.tensor_parallel_size, os.environ.get("CUDA_VISIBLE_DEVICES"))
    with tempfile.TemporaryDirectory(prefix="ur4rec-dp-") as tmp:
        params_file = Path(tmp) / "params.yaml"
        config = {**dataclasses.asdict(cfg), "data_parallel_size": 1}  # a worker never spawns workers itself
        params_file.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        procs = []
        for rank, devices in enumerate(groups):
            env = dict(os.environ)
            if devices is not None:
                env["CUDA_VISIBLE_DEVICES"] = devices
            cmd = [sys.executable, "-m", "ur4rec.llm.parallel", "--config", str(params_file), "--domain", domain,
                   "--dataset", dataset, "--root", str(root), "--rank", str(rank), "--world", str(world)]
            procs.append(subprocess.Popen(cmd, env=env))
        codes = [p.wait() for p in procs]
    failed = [rank for rank, code in enumerate(codes) if code != 0]
    if failed:
        log.warning("data-parallel worker(s) %s failed; generating what they left in this process", failed)
    cache.reload()
    return len(cache) - before, time.perf_counter() - started


def main(argv: list[str] | None = None) -> None:
    from ur4rec.llm.generate import generate_dataset

    parser = argparse.ArgumentParser(description="one data-parallel generation worker")
    parser.add_argument("--config", required=True)
    parser.add_argument("--domain", required=True)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--root", required=True)
    parser.add_argument("--rank", type=int, required=True)
    parser.add_argument("--world", type=int, required=True)
    args = parser.parse_args(argv)
    from ur4rec.config import section
    from ur4rec.llm.config import LLMConfig
    from ur4rec.paths import DatasetPaths

    cfg = section(LLMConfig, yaml.safe_load(Path(args.config).read_text(encoding="utf-8")), "llm")
    generate_dataset(cfg, args.domain, DatasetPaths(args.dataset, Path(args.root)), shard=(args.rank, args.world))


if __name__ == "__main__":
    main()
