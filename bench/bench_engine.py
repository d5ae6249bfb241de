"""Benchmark: the vLLM engine's start and steady speed by compilation mode, side by side on real prompts.

Each mode runs in its own process (vLLM reads these settings at import), twice where a compile cache could
serve the second start:

- aot: vLLM's default on torch >= 2.10 (`VLLM_USE_AOT_COMPILE=1`), graph compiled, AOT artifact cached (on
  torch >= 2.12 as one "mega" artifact);
- aot_split: AOT compile with the artifact per submodule (`VLLM_USE_MEGA_AOT_ARTIFACT=0`);
- standalone: `VLLM_USE_AOT_COMPILE=0`, graph compiled, inductor's standalone cache;
- eager: `llm.vllm.enforce_eager: true`, no compilation.

Per start: engine start seconds (load, compile or cache load, warm-up), output tokens per second and prompts
per second over the same n real ml-100k prompts (half users, half items; the stage's structured outputs), and
whether the log says the compiled graph came from the cache. End-to-end seconds for the default generation
(2,283 prompts) follow from them: start + prompts / prompts-per-second.

    python bench/bench_engine.py [--n 48]

Writes bench/results/engine.json. Skips with a message when ../shared/data/ml-100k is absent.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

MODES = {"aot": {"VLLM_USE_AOT_COMPILE": "1"}, "aot_split": {"VLLM_USE_AOT_COMPILE": "1", "VLLM_USE_MEGA_AOT_ARTIFACT": "0"},
         "standalone": {"VLLM_USE_AOT_COMPILE": "0"}, "eager": {}}
DEFAULT_PROMPTS = 2283  # the default ml-100k generation: 1,349 items and 934 users


def one_start(mode: str, n: int) -> dict:
    """In this process: start the engine of `mode`, answer n real prompts, report the times."""
    from bench.bench_generate import real_jobs
    from ur4rec.config import apply_override, load_params
    from ur4rec.llm.answer import _request
    from ur4rec.llm.backends import make_backend
    from ur4rec.llm.config import llm_config

    params = load_params(REPO / "params.yaml")
    apply_override(params, "llm.backend=vllm")
    apply_override(params, f"llm.vllm.enforce_eager={'true' if mode == 'eager' else 'false'}")
    cfg = llm_config(params)
    backend = make_backend(cfg)
    with tempfile.TemporaryDirectory() as tmp:
        jobs = real_jobs(params, n, backend, Path(tmp))
        start = time.perf_counter()
        backend.start()
        started = time.perf_counter()
        tokens = sum(c.n_output_tokens for c in backend.generate([_request(j, 0) for j in jobs]))
        seconds = time.perf_counter() - started
    backend.close()
    return {"start_s": round(started - start, 1), "tok_per_s": round(tokens / seconds, 1),
            "prompts_per_s": round(len(jobs) / seconds, 3), "n": len(jobs)}


def run_mode(mode: str, n: int) -> dict:
    env = dict(os.environ, **MODES[mode], PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, __file__, "--one", mode, "--n", str(n)], env=env, capture_output=True,
                          text=True, timeout=3600)
    if proc.returncode != 0:
        return {"error": (proc.stdout + proc.stderr)[-2000:]}
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    log = proc.stdout + proc.stderr
    result["cache_loaded"] = "Directly load" in log or "from the cache" in log.lower()
    result["recompiled_after_load_failure"] = "Compiling model again due to a load failure" in log
    result["end_to_end_default_s"] = round(result["start_s"] + DEFAULT_PROMPTS / result["prompts_per_s"], 0)
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=48)
    parser.add_argument("--one", choices=list(MODES))
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one_start(args.one, args.n)))
        return
    from bench.bench_generate import SHARED

    if not SHARED.exists():
        print(f"skipped: {SHARED} is absent")
        return
    results = {}
    # the default's second start is its first here whenever a generation ran on this machine before (the
    # artifact exists), so one start of it shows whether its cache loads
    for mode, starts in (("standalone", 2), ("aot_split", 2), ("aot", 1), ("eager", 1)):
        for k in range(starts):
            results[f"{mode}_{k + 1}"] = run_mode(mode, args.n)
            print(mode, k + 1, results[f"{mode}_{k + 1}"], flush=True)
    best_compiled = min((r for key, r in results.items() if not key.startswith("eager") and "error" not in r),
                        key=lambda r: r["end_to_end_default_s"], default=None)
    if best_compiled and "error" not in results["eager_1"]:
        results["compiled_over_eager_tok_per_s"] = round(best_compiled["tok_per_s"] / results["eager_1"]["tok_per_s"], 2)
        results["eager_over_compiled_end_to_end"] = round(
            best_compiled["end_to_end_default_s"] / results["eager_1"]["end_to_end_default_s"], 2)
    out = REPO / "bench" / "results" / "engine.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
