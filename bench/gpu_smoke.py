"""The steps of `bench/gpu_smoke.sh` (issue #15 item 4), one per call, each writing `<work>/steps/<step>.json`.

    env       the GPU, torch, vLLM and the packaged models (nothing is installed or downloaded)
    prepare   ml-100k from the shared raw files, and a copy cut to `--prompts` real prompts for generation
    generate  vLLM generation of those prompts through the generate stage (`ur4rec.runs.generation.generate`)
    encode    the encode stage on the GPU (`encoder.device`), over every ml-100k text
    joint     one UR4Rec joint epoch at the paper's widths vs the Base epoch, built by `prepare_run`
    collect   every step's JSON (or its error) into one file

The shell script gives each step its own time limit and runs the next one whatever happened. `--dry` runs the
same code on the CPU with tiny counts, to check the wiring on a machine without a GPU.

    python bench/gpu_smoke.py STEP --work DIR [--dry] [--prompts 2000] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import time
import traceback
from pathlib import Path

from common import FirstBatches, epoch_runner, machine, prepare, settings, stand_in_generations, write_result

DATASET = "ml-100k"
PAPER_WIDTHS = ("retriever.arch.init_checkpoint=none", "retriever.arch.width=768", "retriever.arch.n_heads=12",
                "retriever.arch.ffn_dim=3072")
JOINT_ARM = "ur4rec-no-pretrain"  # the UR4Rec model; its pre-trained weights would not change the speed


def device(args) -> str:
    return "cpu" if args.dry else "cuda"


def full_root(work: Path) -> Path:
    return work / "full"


def gen_root(work: Path) -> Path:
    return work / "gen"


# ---------------------------------------------------------------- steps


def step_env(args) -> dict:
    import torch

    from ur4rec.packaged import minilm_dir, smollm2_gguf

    out = {"torch": torch.__version__, "cuda_available": torch.cuda.is_available(), "machine": machine(),
           "smollm2_gguf": str(smollm2_gguf()), "minilm": str(minilm_dir())}
    smi = shutil.which("nvidia-smi")
    if smi:
        query = [smi, "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"]
        out["nvidia_smi"] = subprocess.run(query, capture_output=True, text=True, timeout=15).stdout.strip()
    if torch.cuda.is_available():
        out |= {"gpu": torch.cuda.get_device_name(0), "cuda": torch.version.cuda,
                "gpu_memory_gb": round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1)}
    elif not args.dry:
        raise RuntimeError("torch sees no CUDA device (is the CUDA build installed? bash scripts/install.sh gpu)")
    try:
        import vllm

        out["vllm"] = vllm.__version__
    except ImportError as exc:
        out["vllm"] = f"not importable: {exc}"
    return out


def step_prepare(args) -> dict:
    s = settings()
    started = time.perf_counter()
    stats = prepare(s, DATASET, full_root(args.work))
    seconds = time.perf_counter() - started
    users, items = cut_for_prompts(full_root(args.work) / DATASET / "prepared",
                                   gen_root(args.work) / DATASET / "prepared", args.prompts)
    return {"prepare_s": round(seconds, 2), "users": stats["users"], "items": stats["items"],
            "train_lists": stats["samples"]["train"], "prompt_users": users, "prompt_items": items}


def cut_for_prompts(src: Path, dst: Path, n: int) -> tuple[int, int]:
    """A copy of the prepared folder whose users and items make `n` prompts: the first users (by id) whose LLM
    histories fit, their history items (a user's prompt names them), then more items by id."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    shutil.copytree(src, dst, dirs_exist_ok=True)
    users = pq.read_table(src / "users.parquet").sort_by("user_id")
    items = pq.read_table(src / "items.parquet").sort_by("item_id")
    kept_users, needed = 0, set()
    for history in users.column("llm_history").to_pylist():
        grown = needed | set(history or [])
        if kept_users + 1 + len(grown) > n:
            break
        kept_users, needed = kept_users + 1, grown
    extra = [i for i in items.column("item_id").to_pylist() if i not in needed][: max(0, n - kept_users - len(needed))]
    keep_items = sorted(needed | set(extra))
    pq.write_table(users.slice(0, kept_users), dst / "users.parquet")
    kept = items.filter(pc.is_in(items.column("item_id"), value_set=pa.array(keep_items, pa.int64())))
    pq.write_table(kept, dst / "items.parquet")
    return kept_users, len(keep_items)


def step_generate(args) -> dict:
    from ur4rec.runs import generation

    overrides = [f"llm.backend={args.llm_backend}", "llm.vllm.log_stats=false", f"llm.flush_every={args.prompts}"]
    if not args.dry:
        overrides += ["llm.batch_size=256", "llm.vllm.gpu_memory_utilization=0.85"]
    if args.max_new_tokens:
        overrides.append(f"llm.sampling.max_new_tokens={args.max_new_tokens}")
    s = settings(overrides)
    started = time.perf_counter()
    summary = generation.generate(s, DATASET, gen_root(args.work))
    wall = time.perf_counter() - started
    prompts = summary.get("unique_prompts", args.prompts)
    return {"backend": args.llm_backend, "model": s.llm.model, "max_new_tokens": s.llm.sampling.max_new_tokens,
            "batch_size": s.llm.batch_size, "prompts": prompts, "wall_s_with_engine_start": round(wall, 2),
            "prompts_per_s_with_engine_start": round(prompts / wall, 2), "stage_summary": summary}


def step_encode(args) -> dict:
    from ur4rec.runs import encoding as texts

    generated = gen_root(args.work) / DATASET / "llm"
    target = full_root(args.work) / DATASET / "llm"
    for name in ("user_preferences.parquet", "item_knowledge.parquet"):
        if (generated / name).exists():  # the generated texts encode too; the other ids fall back to raw texts
            target.mkdir(parents=True, exist_ok=True)
            shutil.copy2(generated / name, target / name)
    stand_in_generations(full_root(args.work), DATASET)
    overrides = [f"encoder.device={device(args)}", "encoder.cache=false"]
    if args.encode_batch_tokens:
        overrides.append(f"encoder.batch_tokens={args.encode_batch_tokens}")
    s = settings(overrides)
    n_texts = len(texts.texts_to_encode(s, DATASET, full_root(args.work)))
    runs = []
    for _ in range(1 if args.dry else 2):  # the first loads the model; the second runs with the model in memory
        started = time.perf_counter()
        report = texts.encode(s, DATASET, full_root(args.work), progress=False)
        runs.append(time.perf_counter() - started)
    return {"device": device(args), "model": s.encoder.model, "dtype": s.encoder.dtype,
            "batch_tokens": s.encoder.batch_tokens, "texts": n_texts, "cold_s": round(runs[0], 2),
            "warm_s": round(runs[-1], 2), "texts_per_s": round(n_texts / runs[-1], 1), "stage_report": report["texts"]}


def step_joint(args) -> dict:
    import torch

    from ur4rec.runs.spec import RunSpec
    from ur4rec.runs.training import prepare_run

    layers = 1 if args.dry else args.retriever_layers
    s = settings(["train.progress=false", "train.deterministic=false", "retriever.joint.warm_start=false",
                  f"backbone.{args.backbone}.dim=768", *PAPER_WIDTHS, f"retriever.arch.n_layers={layers}"])
    out = {"backbone": args.backbone, "arm": JOINT_ARM, "device": device(args), "backbone_dim": 768,
           "retriever": {"width": 768, "heads": 12, "ffn": 3072, "layers": layers, "bf16": s.retriever.arch.bf16}}
    for arm, budget in ((None, args.base_seconds), (JOINT_ARM, args.joint_seconds)):
        run = prepare_run(s, RunSpec(DATASET, args.backbone, arm, 0), full_root(args.work))
        out["base" if arm is None else "ur4rec"] = time_epoch(run, device(args), budget, 2 if args.dry else None)
        del run
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    out["ratio"] = round(out["base"]["lists_per_s"] / out["ur4rec"]["lists_per_s"], 3)  # UR4Rec epoch / Base epoch
    return out


def time_epoch(run, where: str, seconds: float, max_batches: int | None) -> dict:
    """The loop's `train_epoch` over the run's epoch on `where`, after one warm-up batch, cut at `seconds` (then
    projected)."""
    import torch

    model = run.model.to(where)  # in place: the parameter groups still hold the model's parameters
    epoch_runner(model, run.groups, FirstBatches(run.task, 1, device=where), run.cfg)()  # CUDA set-up, untimed
    cut = FirstBatches(run.task, max_batches, device=where, seconds=seconds)
    epoch = epoch_runner(model, run.groups, cut, run.cfg)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    losses = epoch()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    wall = time.perf_counter() - started
    lists = min(cut.done * run.cfg.batch_size, run.task.n_train)
    out = {"batches": cut.done, "of_batches": run.task.n_batches(run.cfg.batch_size), "lists": lists,
           "seconds": round(wall, 2), "lists_per_s": round(lists / wall, 1),
           "epoch_s_projected": round(run.task.n_train / (lists / wall), 1), "train_loss": losses.get("loss")}
    if torch.cuda.is_available():
        out["peak_gpu_memory_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    return out


def step_collect(args) -> dict:
    """One JSON: each step's result, or its error and the end of its log."""
    steps = {}
    for name in STEPS:
        if name == "collect":
            continue
        result, rc, log = (args.work / "steps" / f"{name}{ext}" for ext in (".json", ".rc", ".log"))
        if result.exists():
            steps[name] = json.loads(result.read_text())
        elif rc.exists() or log.exists():
            code = rc.read_text().strip() if rc.exists() else "?"
            reason = "timed out" if code in ("124", "137") else f"exit {code}"
            lines = log.read_text(errors="replace").replace("\r", "\n").splitlines() if log.exists() else []
            tail = [line[-300:] for line in lines[-30:]]  # progress bars: the last rate they showed
            steps[name] = {"ok": False, "error": reason, "log_tail": tail}
        else:
            steps[name] = {"ok": False, "error": "not run (no time left)"}
    env = steps.get("env", {})
    return {"dry_run": args.dry, "gpu": env.get("gpu"), "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "ok": all(step.get("ok") for step in steps.values()), "steps": steps}


STEPS = {"env": step_env, "prepare": step_prepare, "generate": step_generate, "encode": step_encode,
         "joint": step_joint, "collect": step_collect}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("step", choices=list(STEPS))
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--dry", action="store_true", help="CPU, tiny counts: checks the wiring")
    parser.add_argument("--prompts", type=int, default=2000)
    parser.add_argument("--llm-backend", default="vllm")
    parser.add_argument("--max-new-tokens", type=int, default=0, help="0: params (llm.sampling.max_new_tokens)")
    parser.add_argument("--encode-batch-tokens", type=int, default=0, help="0: params (encoder.batch_tokens)")
    parser.add_argument("--backbone", default="prm")
    parser.add_argument("--retriever-layers", type=int, default=12, help="BERT-base has 12")
    parser.add_argument("--base-seconds", type=float, default=15.0, help="Base epoch cut after this")
    parser.add_argument("--joint-seconds", type=float, default=60.0, help="UR4Rec epoch cut after this")
    parser.add_argument("--out", type=Path, action="append", default=[], help="collect: where the JSON goes")
    args = parser.parse_args()
    (args.work / "steps").mkdir(parents=True, exist_ok=True)
    if args.step == "collect":
        result = step_collect(args)
        for path in args.out:
            write_result("gpu_smoke", result, path)
        print(json.dumps({k: v for k, v in result.items() if k != "steps"}))
        return
    started = time.perf_counter()
    try:
        result = {"ok": True, **STEPS[args.step](args)}
    except Exception as exc:  # recorded, so the script goes on to the next step
        result = {"ok": False, "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()[-3000:]}
    result["step_s"] = round(time.perf_counter() - started, 2)
    (args.work / "steps" / f"{args.step}.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "traceback"}, default=str)[:2000])
    raise SystemExit(0 if result["ok"] else 1)


if __name__ == "__main__":
    main()
