"""One data-parallel generation worker (started by `ur4rec.llm.parallel`): answers its block of the
uncached prompts into the shared cache and writes no stage outputs."""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from ur4rec.config import section
from ur4rec.llm.answer import answer_missing
from ur4rec.llm.backends import make_backend
from ur4rec.llm.cache import llm_cache
from ur4rec.llm.config import LLMConfig
from ur4rec.llm.jobs import build_jobs, read_prepared, uncached_block
from ur4rec.paths import DatasetPaths


def answer_block(cfg: LLMConfig, domain: str, paths: DatasetPaths, rank: int, world: int) -> None:
    """Generate block `rank` of `world` of the dataset's uncached prompts, flushing to the shared cache."""
    users, items = read_prepared(paths)
    backend = make_backend(cfg)
    try:
        jobs = build_jobs(backend, cfg, domain, users, items)
        cache = llm_cache(cfg, paths.root)
        answer_missing(uncached_block(jobs, cache, rank, world), cache, backend, cfg, f"{paths.name} [{rank}/{world}]")
    finally:
        backend.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="one data-parallel generation worker")
    parser.add_argument("--config", required=True, help="YAML of the llm config (dataclasses.asdict)")
    parser.add_argument("--domain", required=True)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--root", required=True)
    parser.add_argument("--rank", type=int, required=True)
    parser.add_argument("--world", type=int, required=True)
    args = parser.parse_args(argv)
    cfg = section(LLMConfig, yaml.safe_load(Path(args.config).read_text(encoding="utf-8")), "llm")
    answer_block(cfg, args.domain, DatasetPaths(args.dataset, Path(args.root)), args.rank, args.world)


if __name__ == "__main__":
    main()
