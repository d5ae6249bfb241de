"""Benchmark: the structured answers' token budget (`llm.sampling.max_new_tokens`) against schema violations,
retries and prompts per second, side by side on one vLLM engine.

A grammar-constrained answer cannot break its schema, but it can be cut by the token budget before its JSON
closes; the cut answer does not parse, counts as a schema violation and is drawn again, in a retry round of its
own after its batch. This runs the generate stage's own `answer_missing` (cache, judging, retries) on the same
real ml-100k prompts (the first `--users` user prompts and `--items` item prompts, default params otherwise)
once per budget, on one engine, a fresh cache and a reset prefix cache each time, after one warm-up batch.

    python bench/bench_answer_budget.py [--users 128] [--items 32] [--budgets 80,128]

Writes bench/results/answer_budget.json. Skips with a message when ../shared/data/ml-100k is absent.
Generation takes the whole machine: run it alone.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.bench_generate import SHARED  # noqa: E402
from ur4rec.config import load_params  # noqa: E402
from ur4rec.io import write_json  # noqa: E402


def prepared(params, workdir: Path) -> tuple[list[dict], list[dict]]:
    """ml-100k's users and items, prepared by the real prepare stage."""
    from ur4rec.llm.jobs import read_prepared
    from ur4rec.paths import DatasetPaths
    from ur4rec.runs.data import prepare
    from ur4rec.runs.data_settings import parse_data_settings

    prepare(parse_data_settings(params), "ml-100k", raw_dir=SHARED, root=workdir)
    return read_prepared(DatasetPaths("ml-100k", workdir))


def pick_jobs(backend, cfg, data, users: slice, n_items: int) -> list:
    """The jobs of these user prompts and the first n_items item prompts under `cfg` (its sampling is in the key)."""
    from ur4rec.llm.jobs import build_jobs

    jobs = build_jobs(backend, cfg, "movie", *data)
    return [j for j in jobs if j.kind == "user"][users] + [j for j in jobs if j.kind == "item"][:n_items]


def run_budget(backend, cfg, data, users: slice, n_items: int, budget: int, cache_dir: Path) -> dict:
    """The stage's answering at one budget: violations, retries, statuses and speed, per kind where it matters."""
    from ur4rec.llm.answer import answer_missing
    from ur4rec.llm.cache import LLMCache

    run_cfg = dataclasses.replace(cfg, sampling=dataclasses.replace(cfg.sampling, max_new_tokens=budget))
    backend.cfg = run_cfg  # the engine reads the budget per request
    jobs = pick_jobs(backend, run_cfg, data, users, n_items)
    if cfg.backend == "vllm":
        backend._engine().reset_prefix_cache()
    cache = LLMCache(cache_dir)
    _, stats = answer_missing(jobs, cache, backend, run_cfg, f"budget {budget}")
    cache.refresh()
    records = [j.cached(cache) for j in jobs]
    by_kind: dict[str, dict] = {}
    for kind in ("user", "item"):
        mine = [r for j, r in zip(jobs, records) if j.kind == kind and r is not None]
        if mine:
            by_kind[kind] = {
                "prompts": len(mine),
                "first_attempt_ok": sum(r["attempts"] == 1 for r in mine) / len(mine),
                "statuses": dict(Counter(r["status"] for r in mine)),
                "mean_output_tokens_final": sum(r["n_output_tokens"] for r in mine) / len(mine),
                "cut_at_budget_final": sum(r["finish_reason"] == "length" for r in mine) / len(mine),
            }
    return {
        "max_new_tokens": budget, "prompts": len(jobs), "seconds": stats.seconds,
        "prompts_per_s": len(jobs) / stats.seconds, "output_tokens": stats.output_tokens,
        "output_tok_per_s": stats.output_tokens / stats.seconds,
        "schema_violations": stats.schema_violations, "retried": stats.retried,
        "violation_share": stats.schema_violations / len(jobs), "retry_share": stats.retried / len(jobs),
        "by_kind": by_kind,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--users", type=int, default=128)
    ap.add_argument("--items", type=int, default=32)
    ap.add_argument("--warm", type=int, default=16, help="user prompts answered before the measured runs")
    ap.add_argument("--budgets", default="80,128", help="comma-separated max_new_tokens, run in this order")
    ap.add_argument("--backend", default="vllm", help="vllm (the measure) | transformers (a quick check of the bench)")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "answer_budget.json")
    args = ap.parse_args()
    if not SHARED.exists():
        print(f"skipped: real dataset not found at {SHARED} (set UR4REC_SHARED_DATA)")
        return
    budgets = [int(b) for b in args.budgets.split(",")]

    from ur4rec.llm.backends import make_backend
    from ur4rec.llm.config import llm_config

    params = load_params(REPO / "params.yaml", [f"llm.backend={args.backend}"])
    cfg = llm_config(params)
    runs = []
    with tempfile.TemporaryDirectory(prefix="bench-budget-") as tmp:
        workdir = Path(tmp)
        backend = make_backend(cfg)
        data = prepared(params, workdir)
        backend.start()
        # other user prompts warm the engine up: the first batch after start-up pays one-off costs
        if args.warm:
            run_budget(backend, cfg, data, slice(args.users, args.users + args.warm), 0, budgets[0], workdir / "warm")
        for budget in budgets:
            runs.append(run_budget(backend, cfg, data, slice(0, args.users), args.items, budget, workdir / f"cache-{budget}"))
            print(json.dumps(runs[-1]), flush=True)
        backend.close()
    base = runs[0]
    result = {
        "machine": f"{os.cpu_count()} CPU cores, no GPU", "backend": cfg.backend, "model": cfg.model, "dtype": cfg.dtype,
        "batch_size": cfg.batch_size, "users": args.users, "items": args.items, "runs": runs,
        "prompts_per_s_ratio_vs_first": {str(r["max_new_tokens"]): r["prompts_per_s"] / base["prompts_per_s"] for r in runs},
    }
    write_json(args.out, result)
    for r in runs:
        print(f"max_new_tokens {r['max_new_tokens']:4d}: violations {100 * r['violation_share']:5.1f}% of prompts, "
              f"retried {100 * r['retry_share']:5.1f}%, {r['prompts_per_s']:.2f} prompts/s, "
              f"{r['output_tok_per_s']:.1f} tok/s, x{r['prompts_per_s'] / base['prompts_per_s']:.2f} vs first")


if __name__ == "__main__":
    main()
