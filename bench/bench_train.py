"""Training and scoring throughput of the five backbones on the real MovieLens-100K lists (CPU).

Each backbone's Base run is built by the runs layer (`prepare_run`: the model, task and loop settings its
training uses), then, in one process, interleaved round after round so load from other processes hits them
alike (best round kept):
  train  lists/s of the loop's `train_epoch` over the run's first `--batches` training batches (forward,
         listwise loss, backward, clipping, AdamW), batch `train.batch_size`
  eval   lists/s of `predict` (no grad) over the run's validation lists, batch `evaluate.batch_size`
Both also per CPU second, which on free cores at `train.threads=1` equals the wall time. A projection of one
epoch over the prepared training split is printed, and ratios to the fastest backbone.

    python bench/bench_train.py [--batches 20] [--rounds 3] [--threads 1] [--backbones dlcm,prm]

Writes bench/results/train.json. Needs ../shared/data/ml-100k (or UR4REC_SHARED_DATA); says so and measures
nothing when it is absent.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from common import FirstBatches, epoch_runner, machine, missing, prepare, settings, timed, write_result

DATASET = "ml-100k"


def setup(s, backbone: str, root: Path, n_batches: int) -> dict:
    from ur4rec.runs.spec import RunSpec
    from ur4rec.runs.training import prepare_run
    from ur4rec.train.rerank import predict

    run = prepare_run(s, RunSpec(DATASET, backbone, None, 0), root)
    return {"train": epoch_runner(run.model, run.groups, FirstBatches(run.task, n_batches), run.cfg),
            "eval": lambda: predict(run.model, run.task.valid, s.evaluate.batch_size),
            "n_timed": min(n_batches * run.cfg.batch_size, run.task.n_train), "n_train": run.task.n_train,
            "n_valid": len(run.task.valid), "batch_size": run.cfg.batch_size}


def measure(setups: dict, rounds: int) -> dict[str, dict[str, tuple[float, float]]]:
    best: dict[str, dict[str, tuple[float, float]]] = {n: {} for n in setups}
    for round_ in range(rounds + 1):  # round 0 warms up
        for name, run in setups.items():
            for kind in ("train", "eval"):
                wall, cpu = timed(run[kind])
                if round_ and (kind not in best[name] or wall < best[name][kind][0]):
                    best[name][kind] = (wall, cpu)
    return best


def rows_of(setups: dict, best: dict) -> dict[str, dict]:
    rows = {}
    for name, run in setups.items():
        (tw, tc), (ew, ec) = best[name]["train"], best[name]["eval"]
        n, v = run["n_timed"], run["n_valid"]
        rows[name] = {"train_samples_per_s": n / tw, "train_samples_per_cpu_s": n / tc,
                      "eval_samples_per_s": v / ew, "eval_samples_per_cpu_s": v / ec,
                      "epoch_seconds_projected": run["n_train"] / (n / tw),
                      "epoch_cpu_seconds_projected": run["n_train"] / (n / tc)}
    fastest = max(r["train_samples_per_s"] for r in rows.values())
    for row in rows.values():
        row["train_vs_fastest"] = row["train_samples_per_s"] / fastest
    return rows


def report(rows: dict, args, batch_size: int) -> None:
    print(f"{DATASET}, {args.threads} thread(s), batch {batch_size}, {args.batches} batches, "
          f"best of {args.rounds} rounds")
    print(f"{'backbone':<9} {'train/s':>9} {'(cpu)':>9} {'vs best':>8} {'eval/s':>9} {'(cpu)':>9} {'epoch s':>8} "
          f"{'(cpu)':>7}")
    for name, r in rows.items():
        print(f"{name:<9} {r['train_samples_per_s']:9.0f} {r['train_samples_per_cpu_s']:9.0f} "
              f"{r['train_vs_fastest']:8.2f} {r['eval_samples_per_s']:9.0f} {r['eval_samples_per_cpu_s']:9.0f} "
              f"{r['epoch_seconds_projected']:8.1f} {r['epoch_cpu_seconds_projected']:7.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=20, help="training batches per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--backbones", default="dlcm,prm,setrank,gru4rec,sasrec")
    args = parser.parse_args()
    s = settings(["train.progress=false", f"train.threads={args.threads}"])
    if missing(s, DATASET):
        return
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        root = Path(tmp)
        prepare(s, DATASET, root)
        setups = {name: setup(s, name, root, args.batches) for name in args.backbones.split(",")}
        best = measure(setups, args.rounds)
    rows = rows_of(setups, best)
    batch_size = next(iter(setups.values()))["batch_size"]
    report(rows, args, batch_size)
    write_result("train", {"dataset": DATASET, "threads": args.threads, "batches": args.batches,
                           "rounds": args.rounds, "batch_size": batch_size, "machine": machine(), "backbones": rows})


if __name__ == "__main__":
    main()
