"""Benchmark: what the generate stage's outputs say, per setting: free vs structured, instruction vs data first.

On the same real MovieLens-100K users and items (prepared by the real prepare stage, rendered by the stage's
own templates and schemas) with the default model (packaged SmolLM2 on vLLM), each setting runs the stage's
`answer_missing` (quality checks, schema checks, retries) into its own empty cache, and reports per kind:

- echo: median / mean share of output word 4-grams copied from the prompt's data, titles repeated, and the
  same share against the rest of the prompt (instruction and system message);
- % of outputs that hit the token limit, statuses, output tokens per answer;
- items: share of texts that name a director / cast / author (people a small model mostly invents);
- per setting: wall seconds, output tokens/s, prompts/s, retries, vLLM prefix-cache hit rate.

The prompts are split into rounds and every round runs all settings, in a rotating order, so that load from
other work on a shared machine falls on every setting alike. A round should hold a few times `llm.batch_size`
prompts: with fewer, all of them decode at once and the round lasts as long as its longest answer (plus its
retries), which is not how the stage runs. Targets (issue #13, CPU default): median user echo share <= 0.2,
<= 10% of user outputs truncated, wall time <= 1.25x free instruction-first.

    python bench/bench_llm_texts.py [--users 150] [--items 150] [--rounds 2] [--free-max-new-tokens 64]
                                    [--structured-max-new-tokens 96]
                                    [--settings structured/data_first ...]

Writes bench/results/llm_texts.json. Skips with a message when ../shared/data/ml-100k is absent.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import re
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ur4rec.config import load_params  # noqa: E402
from ur4rec.io import write_json  # noqa: E402

SHARED = Path(os.environ.get("UR4REC_SHARED_DATA", REPO.parent / "shared" / "data")) / "ml-100k"
# Names of people an item text claims (director, cast, author): a 135M model invents them.
PEOPLE = re.compile(r"\b(directed by|director|directors|starring|stars|cast|actor|actors|actress|written by|author)\b", re.I)
BASELINE = "free/instruction_first"


def settings(params, free_tokens: int, structured_tokens: int) -> dict[str, dict]:
    from ur4rec.llm.config import llm_config

    base = llm_config(params)
    out = {}
    for structured in (False, True):
        for order in ("instruction_first", "data_first"):
            tokens = structured_tokens if structured else free_tokens
            sampling = dataclasses.replace(base.sampling, max_new_tokens=tokens)
            name = f"{'structured' if structured else 'free'}/{order}"
            out[name] = dataclasses.replace(base, structured=structured, prompt_order=order, sampling=sampling)
    return out


def prepared(params, workdir: Path):
    from ur4rec.data.prepare import prepare_dataset
    from ur4rec.llm.jobs import read_prepared
    from ur4rec.paths import DatasetPaths

    paths = DatasetPaths("ml-100k", workdir)
    prepare_dataset(params, "ml-100k", raw_dir=SHARED, out=paths.prepared)
    return read_prepared(paths)


def sample_ids(users, items, n_users: int, n_items: int, seed: int = 0) -> dict[str, list[int]]:
    rng = random.Random(seed)
    return {"user": rng.sample([int(u["user_id"]) for u in users], n_users),
            "item": rng.sample([int(i["item_id"]) for i in items], n_items)}


def prefix_counters(backend) -> tuple[float, float]:
    values = {m.name: getattr(m, "value", 0) for m in backend._engine().get_metrics()}
    return values.get("vllm:prefix_cache_queries", 0.0), values.get("vllm:prefix_cache_hits", 0.0)


def run_round(jobs, cfg, backend, cache_root: Path) -> dict:
    from ur4rec.llm.answer import answer_missing
    from ur4rec.llm.cache import LLMCache

    backend.reconfigure(cfg)
    backend._engine().reset_prefix_cache()
    q0, h0 = prefix_counters(backend)
    cache = LLMCache(cache_root)
    errors, stats = answer_missing(jobs, cache, backend, cfg, "bench")
    q1, h1 = prefix_counters(backend)
    records = {j.key: cache.get(j.key) or errors[j.key] for j in jobs}
    return {"stats": stats, "records": records, "prefix": (q1 - q0, h1 - h0)}


def kind_metrics(jobs, records) -> dict:
    from ur4rec.llm.echo import echo_share, titles_repeated

    rows = [(j, records[j.key]) for j in jobs]
    echo = [echo_share(r["text"], j.data) for j, r in rows]
    # Copying the instruction (or system message) back is a failure too, though not the stage's echo measure.
    told = [echo_share(r["text"], j.prompt.replace(j.data, " ")) for j, r in rows]
    out = {
        "n": len(rows),
        "echo_share_median": round(statistics.median(echo), 4),
        "echo_share_mean": round(statistics.fmean(echo), 4),
        "instruction_echo_median": round(statistics.median(told), 4),
        "instruction_echo_mean": round(statistics.fmean(told), 4),
        "titles_repeated_mean": round(statistics.fmean(titles_repeated(r["text"], j.titles) for j, r in rows), 3),
        "share_truncated": round(sum(r["finish_reason"] == "length" for _, r in rows) / len(rows), 4),
        "statuses": dict(sorted(Counter(r["status"] for _, r in rows).items())),
        "output_tokens_mean": round(statistics.fmean(r["n_output_tokens"] for _, r in rows), 1),
        "names_people_share": round(sum(bool(PEOPLE.search(r["text"])) for _, r in rows) / len(rows), 4),
        "examples": [r["text"] for _, r in rows[:3]],
    }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--users", type=int, default=150)
    ap.add_argument("--items", type=int, default=150)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--free-max-new-tokens", type=int, default=64, help="the free-text CPU default before #13")
    ap.add_argument("--structured-max-new-tokens", type=int, default=96)
    ap.add_argument("--settings", nargs="+", help=f"subset of the four settings (always with {BASELINE})")
    ap.add_argument("--keep", type=Path, help="work in this folder and keep it (the caches hold every output)")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "llm_texts.json")
    args = ap.parse_args()
    if not SHARED.exists():
        print(f"skipped: real dataset not found at {SHARED} (set UR4REC_SHARED_DATA)")
        return

    from ur4rec.llm.backends import make_backend
    from ur4rec.llm.jobs import build_jobs

    overrides = ["llm.backend=vllm", "llm.vllm.log_stats=true"]
    for key, rel in [("llm.templates.user", "templates/user_preference.yaml"), ("llm.templates.item.movie", "templates/item_movie.yaml"),
                     ("llm.schemas.user.movie", "templates/user_movie.schema.yaml"),
                     ("llm.schemas.item.movie", "templates/item_movie.schema.yaml")]:
        overrides.append(f"{key}={REPO / rel}")
    params = load_params(REPO / "params.yaml", overrides)
    configs = settings(params, args.free_max_new_tokens, args.structured_max_new_tokens)
    if args.settings:
        configs = {k: v for k, v in configs.items() if k == BASELINE or k in args.settings}
    with tempfile.TemporaryDirectory(prefix="bench-llm-texts-") as tmp:
        workdir = args.keep or Path(tmp)
        users, items = prepared(params, workdir)
        chosen = sample_ids(users, items, args.users, args.items)
        backend = make_backend(next(iter(configs.values())))
        t0 = time.perf_counter()
        backend.start()
        engine_start = time.perf_counter() - t0
        jobs = {}
        for name, cfg in configs.items():
            backend.reconfigure(cfg)
            all_jobs = {(j.kind, j.id): j for j in build_jobs(backend, cfg, "movie", users, items)}
            jobs[name] = [all_jobs[(kind, i)] for kind in ("user", "item") for i in chosen[kind]]
        totals = defaultdict(lambda: {"seconds": 0.0, "output_tokens": 0, "retried": 0, "schema_violations": 0,
                                      "prefix_queries": 0.0, "prefix_hits": 0.0, "records": {}})
        names = list(configs)
        for r in range(args.rounds):
            for k in range(len(names)):  # rotate the order so that no setting always runs first
                name = names[(r + k) % len(names)]
                chunk = [j for i, j in enumerate(jobs[name]) if i % args.rounds == r]
                result = run_round(chunk, configs[name], backend, workdir / "cache" / name.replace("/", "-") / str(r))
                t, st = totals[name], result["stats"]
                t["seconds"] += st.seconds
                t["output_tokens"] += st.output_tokens
                t["retried"] += st.retried
                t["schema_violations"] += st.schema_violations
                t["prefix_queries"] += result["prefix"][0]
                t["prefix_hits"] += result["prefix"][1]
                t["records"].update(result["records"])
                print(f"round {r + 1}/{args.rounds} {name}: {st.seconds:.1f} s, {st.output_tokens} tokens", flush=True)
        backend.close()

    results = {}
    for name in names:
        t = totals[name]
        by_kind = {kind: kind_metrics([j for j in jobs[name] if j.kind == kind], t["records"]) for kind in ("user", "item")}
        results[name] = {
            "wall_seconds": round(t["seconds"], 1),
            "output_tokens": t["output_tokens"],
            "output_tokens_per_s": round(t["output_tokens"] / t["seconds"], 1),
            "prompts_per_s": round(len(jobs[name]) / t["seconds"], 3),
            "retried": t["retried"],
            "schema_violations": t["schema_violations"],
            "prefix_cache_hit_rate": round(t["prefix_hits"] / t["prefix_queries"], 4) if t["prefix_queries"] else None,
            "time_vs_baseline": round(t["seconds"] / totals[BASELINE]["seconds"], 3),
            **by_kind,
        }
    result = {
        "machine": f"{os.cpu_count()} CPU cores (shared), no GPU",
        "model": configs[BASELINE].model, "dtype": configs[BASELINE].dtype,
        "users": args.users, "items": args.items, "rounds": args.rounds,
        "max_new_tokens": {"free": args.free_max_new_tokens, "structured": args.structured_max_new_tokens},
        "engine_start_s": round(engine_start, 1),
        "settings": results,
    }
    write_json(args.out, result)
    print(json.dumps(result, indent=2, ensure_ascii=False))
    print(f"\n{'setting':28} {'user echo med':>13} {'user trunc':>10} {'item echo med':>13} {'item people':>11} "
          f"{'tok/s':>7} {'time x':>7}")
    for name, r in results.items():
        print(f"{name:28} {r['user']['echo_share_median']:13.3f} {r['user']['share_truncated']:10.1%} "
              f"{r['item']['echo_share_median']:13.3f} {r['item']['names_people_share']:11.1%} "
              f"{r['output_tokens_per_s']:7.1f} {r['time_vs_baseline']:7.2f}")
    print("targets (CPU default): user echo median <= 0.2, user truncated <= 10%, time <= 1.25x free/instruction_first")


if __name__ == "__main__":
    main()
