"""Benchmark: bf16 against fp32 on this CPU, side by side, for what `auto` precision decides.

- matmul: the retriever's widest product ([256, 384] @ [384, 1536]) plain and under bf16 autocast;
- transformer layer: one BERT-sized layer (384 wide, 12 heads, FFN 1536) forward on [32, 160, 384];
- LLM (with --llm N): the generate stage's vLLM backend on N real ml-100k prompts (half users, half items),
  `llm.dtype` bfloat16 against float32, eager engine, default structured sampling: output tok/s.

Ratios are bf16 time over fp32 time (>1: bf16 is slower here). `auto` chooses bf16 only where the CPU lists
avx512_bf16 or amx_bf16 (`ur4rec.precision`); the JSON records whether this one does.

    python bench/bench_precision.py [--threads 1] [--llm 48]

Writes bench/results/precision.json. The LLM part skips with a message when ../shared/data/ml-100k is absent.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from bench.common import machine, write_result  # noqa: E402
from ur4rec.precision import cpu_native_bf16  # noqa: E402


def best_seconds(fn, repeats: int = 3) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def autocast_pair(fn) -> dict[str, float]:
    def under(enabled: bool):
        def run():
            with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=enabled):
                fn()
        return run
    fp32, bf16 = best_seconds(under(False)), best_seconds(under(True))
    return {"fp32_s": round(fp32, 4), "bf16_s": round(bf16, 4), "bf16_over_fp32": round(bf16 / fp32, 2)}


def llm_pair(n: int) -> dict[str, float] | str:
    bench_generate = __import__("bench.bench_generate", fromlist=["real_jobs"])
    if not bench_generate.SHARED.exists():
        return f"skipped: {bench_generate.SHARED} is absent"
    from ur4rec.config import apply_override, load_params
    from ur4rec.llm.answer import _request, judge
    from ur4rec.llm.backends import make_backend
    from ur4rec.llm.config import llm_config

    out: dict[str, float] = {}
    for dtype in ("float32", "bfloat16"):
        params = load_params(REPO / "params.yaml")
        for item in (f"llm.dtype={dtype}", "llm.vllm.enforce_eager=true", "llm.backend=vllm"):
            apply_override(params, item)
        cfg = llm_config(params)
        backend = make_backend(cfg)
        with tempfile.TemporaryDirectory() as tmp:
            jobs = bench_generate.real_jobs(params, n, backend, Path(tmp))
            backend.start()
            start, tokens, bad = time.perf_counter(), 0, 0
            for completion in backend.generate([_request(j, 0) for j in jobs]):
                tokens += completion.n_output_tokens
                job = next(j for j in jobs if j.key == completion.key)
                bad += judge(job, completion, cfg.quality).status != "ok"
            seconds = time.perf_counter() - start
        backend.close()
        out[f"{dtype}_tok_per_s"] = round(tokens / seconds, 1)
        out[f"{dtype}_not_ok"] = bad
    out["bf16_over_fp32_time"] = round(out["float32_tok_per_s"] / out["bfloat16_tok_per_s"], 2)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--llm", type=int, default=0, help="prompts for the LLM comparison (0: skip it)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    a, w = torch.randn(256, 384), torch.randn(384, 1536)
    layer = torch.nn.TransformerEncoderLayer(384, 12, 1536, batch_first=True).eval()
    x = torch.randn(32, 160, 384)
    result = {
        "machine": machine(), "native_bf16": cpu_native_bf16(), "threads": args.threads,
        "matmul_x50": autocast_pair(lambda: [a @ w for _ in range(50)]),
        "transformer_layer": autocast_pair(lambda: layer(x)),
    }
    if args.llm:
        result["llm"] = llm_pair(args.llm)
    for key, value in result.items():
        print(f"{key}: {value}")
    write_result("precision", result)


if __name__ == "__main__":
    main()
