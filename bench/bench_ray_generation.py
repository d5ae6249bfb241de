"""Benchmark: the Ray backend (engine actors) against the plain vllm backend, on the same real prompts.

Real MovieLens-100K prompts (half users, half items, rendered by the stage's templates, the shipped `llm:`
settings: packaged SmolLM2; free text unless --structured), each contender answering them from an empty cache:

- plain: `llm.backend: vllm` in this process (`answer_missing`, the stage's in-process path; vLLM-CPU bound
  to every allowed core);
- ray: `llm.backend: ray`, `--workers` engine actors of `--engine` on a local Ray cluster (`generate_on_ray`,
  one CPU and one torch thread each, so both contenders get the same cores).

Both wall times include engine start-up (Ray's: the actors' processes and engines; starting Ray itself is
reported apart, a cluster is normally up already); the generation-only time of the plain run is reported
too. Outputs are compared key by key: same statuses and texts are expected (vLLM seeds every request).

    python bench/bench_ray_generation.py [--n 200] [--workers 2] [--engine vllm] [--ray-batch 64] [--max-new-tokens 32]

Writes bench/results/ray_generation.json. Skips with a message when ../shared/data/ml-100k is absent.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

DATASET = "ml-100k"


def real_jobs(s, backend, root: Path, n: int):
    """n prompts of real ml-100k (half users, half items), prepared by the prepare stage."""
    from ur4rec.llm.jobs import build_jobs, read_prepared
    from ur4rec.paths import DatasetPaths

    common.prepare(s, DATASET, root)
    users, items = read_prepared(DatasetPaths(DATASET, root))
    jobs = build_jobs(backend, backend.cfg, s.dataset_config(DATASET).domain, users, items)
    user_jobs = [j for j in jobs if j.kind == "user"][: n // 2]
    return user_jobs + [j for j in jobs if j.kind == "item"][: n - len(user_jobs)]


def run_plain(jobs, cfg, backend, cache_root: Path) -> dict:
    from ur4rec.llm.answer import answer_missing
    from ur4rec.llm.cache import LLMCache

    started = time.perf_counter()
    _, stats = answer_missing(jobs, LLMCache(cache_root), backend, cfg, "plain vllm")
    wall = time.perf_counter() - started
    backend.close()
    return {"wall_s": wall, "generation_s": stats.seconds, "engine_start_s": wall - stats.seconds,
            "output_tokens": stats.output_tokens, "retried": stats.retried, "tok_per_s_wall": stats.output_tokens / wall}


def run_ray(jobs, cfg, cache_root: Path) -> dict:
    import ray

    from ur4rec.llm.backends import make_backend
    from ur4rec.llm.cache import LLMCache
    from ur4rec.llm.cluster import generate_on_ray

    started = time.perf_counter()
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    init_s = time.perf_counter() - started
    try:
        driver = make_backend(cfg)  # renders nothing here; gives the actors its engine and model identity
        started = time.perf_counter()
        run = generate_on_ray(jobs, LLMCache(cache_root), cfg, driver)
        wall = time.perf_counter() - started
    finally:
        ray.shutdown()
    out = run.stats.output_tokens
    return {"ray_init_s": init_s, "wall_s": wall, "output_tokens": out, "retried": run.stats.retried,
            "tok_per_s_wall": out / wall, "failed": len(run.errors), **run.summary()}


def compare(jobs, plain_root: Path, ray_root: Path) -> dict:
    from ur4rec.llm.cache import LLMCache

    a, b = LLMCache(plain_root), LLMCache(ray_root)
    keys = {j.key for j in jobs}
    both = [k for k in keys if k in a and k in b]
    return {
        "keys": len(keys), "in_both": len(both),
        "same_status": sum(a.get(k)["status"] == b.get(k)["status"] for k in both),
        "same_text": sum(a.get(k)["text"] == b.get(k)["text"] for k in both),
        "status_plain": _counts(a.get(k)["status"] for k in both),
        "status_ray": _counts(b.get(k)["status"] for k in both),
    }


def _counts(values) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return dict(sorted(out.items()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--engine", default="vllm", choices=("vllm", "transformers"))
    ap.add_argument("--ray-batch", type=int, default=0, help="prompts per Ray batch (default: llm.ray.batch_size)")
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--structured", action="store_true", help="JSON schema answers, the shipped default (give ~80 new tokens)")
    ap.add_argument("--out", type=Path, default=common.RESULTS / "ray_generation.json")
    args = ap.parse_args()
    s = common.settings([f"llm.sampling.max_new_tokens={args.max_new_tokens}", f"llm.structured={str(args.structured).lower()}"])
    if common.missing(s, DATASET):
        return

    from ur4rec.llm.backends import make_backend

    args.ray_batch = args.ray_batch or s.llm.ray.batch_size
    plain_cfg = dataclasses.replace(s.llm, backend="vllm")
    ray_cfg = dataclasses.replace(s.llm, backend="ray", ray=dataclasses.replace(
        s.llm.ray, engine=args.engine, num_workers=args.workers, num_cpus_per_worker=1, batch_size=args.ray_batch))
    load_before = common.machine()["load_avg"]
    with tempfile.TemporaryDirectory(prefix="bench-ray-") as tmp:
        root = Path(tmp)
        backend = make_backend(plain_cfg)
        jobs = real_jobs(s, backend, root / "data", args.n)
        plain = run_plain(jobs, plain_cfg, backend, root / "plain")
        ray_run = run_ray(jobs, ray_cfg, root / "ray")
        agreement = compare(jobs, root / "plain", root / "ray")
    if agreement["in_both"] < len(jobs):
        raise SystemExit(f"the Ray run cached {agreement['in_both']} of {len(jobs)} prompts (see the warning above); "
                         "nothing written")
    result = {
        "machine": {**common.machine(), "load_avg_before": load_before, "gpu": None},
        "model": s.llm.model, "dtype": s.llm.dtype, "structured": s.llm.structured, "prompts": len(jobs),
        "max_new_tokens": args.max_new_tokens,
        "ray": {"engine": args.engine, "workers": args.workers, "cpus_per_worker": 1, "threads_per_worker": 1,
                "batch_size": args.ray_batch},
        "plain_vllm": plain, "ray_backend": ray_run, "agreement": agreement,
        "ray_vs_plain_wall": plain["wall_s"] / ray_run["wall_s"],
    }
    common.write_result(args.out.stem, result, args.out)
    print(f"plain vllm: {plain['wall_s']:.1f} s ({plain['engine_start_s']:.1f} s engine start), "
          f"ray ({args.workers} x {args.engine}): {ray_run['wall_s']:.1f} s (+{ray_run['ray_init_s']:.1f} s ray.init)")
    print(f"ray vs plain (wall, higher is faster): {result['ray_vs_plain_wall']:.2f}x; "
          f"same status {agreement['same_status']}/{agreement['in_both']}, same text {agreement['same_text']}/{agreement['in_both']}")


if __name__ == "__main__":
    main()
