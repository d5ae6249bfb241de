"""Training and evaluation throughput of the five backbones on the real MovieLens-100K samples (CPU).

For each backbone (default params.yaml settings), in one process, interleaved round after round so load from
other processes hits them alike (best round kept):
  train  samples/s of the training step (forward, listwise loss, backward, AdamW), batch `train.batch_size`
  eval   samples/s of scoring (`predict`, no grad), batch `evaluate.batch_size`
Both also as CPU seconds, which on free cores at `train.threads=1` equal the wall time. A projection of one
epoch over the prepared training split is printed, and ratios to the fastest backbone.

    python bench/bench_train.py [--batches 20] [--rounds 3] [--threads 1]

Writes bench/results/train.json. Needs ../shared/data/ml-100k (or UR4REC_SHARED_DATA); exits with a message
when it is absent.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("UR4REC_SHARED_DATA", REPO.parent / "shared" / "data"))
RESULTS = REPO / "bench" / "results"
DATASET = "ml-100k"


def timed(fn) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def train_steps(model, data, batch_size: int, n_batches: int, lr: float):
    from ur4rec.train.loop import backbone_loss

    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    batches = [data.take(torch.arange(i * batch_size, (i + 1) * batch_size) % len(data)) for i in range(n_batches)]

    def run() -> None:
        model.train()
        for batch in batches:
            loss = backbone_loss(model(batch), batch.target_pos)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=20, help="training batches per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--backbones", default="dlcm,prm,setrank,gru4rec,sasrec")
    args = parser.parse_args()
    if not (SHARED / DATASET).exists():
        sys.exit(f"real dataset {DATASET!r} not found at {SHARED / DATASET} (set UR4REC_SHARED_DATA); nothing measured")

    from ur4rec.config import load_params
    from ur4rec.data.prepare import prepare_dataset
    from ur4rec.train.loop import predict
    from ur4rec.train.run import run_context

    torch.set_num_threads(args.threads)
    params = load_params(REPO / "params.yaml")
    root = Path(tempfile.mkdtemp(prefix="bench-train-"))
    prepare_dataset(params, DATASET, raw_dir=SHARED / DATASET, out=root / DATASET / "prepared")
    eval_batch = params.get("evaluate", {}).get("batch_size", 256)
    setups = {}
    for name in args.backbones.split(","):
        ctx = run_context(DATASET, name, "base", params, root=root)
        torch.manual_seed(0)
        model = ctx.build_backbone()
        train, test = ctx.load_split("train"), ctx.load_split("test")
        bs = ctx.train_cfg.batch_size
        setups[name] = {"train": train_steps(model, train, bs, args.batches, ctx.train_cfg.lr),
                        "eval": lambda m=model, t=test: predict(m, t, eval_batch),
                        "n_train": len(train), "n_test": len(test), "bs": bs}
    best: dict[str, dict[str, tuple[float, float]]] = {n: {} for n in setups}
    for round_ in range(args.rounds + 1):           # round 0 warms up
        for name, s in setups.items():
            for kind in ("train", "eval"):
                wall, cpu = timed(s[kind])
                if round_ and (kind not in best[name] or wall < best[name][kind][0]):
                    best[name][kind] = (wall, cpu)
    rows = {}
    for name, s in setups.items():
        n_train, n_eval = args.batches * s["bs"], s["n_test"]
        (tw, tc), (ew, ec) = best[name]["train"], best[name]["eval"]
        rows[name] = {"train_samples_per_s": n_train / tw, "train_samples_per_cpu_s": n_train / tc,
                      "eval_samples_per_s": n_eval / ew, "eval_samples_per_cpu_s": n_eval / ec,
                      "epoch_seconds_projected": s["n_train"] / (n_train / tw),
                      "epoch_cpu_seconds_projected": s["n_train"] / (n_train / tc)}
    fastest = max(r["train_samples_per_s"] for r in rows.values())
    print(f"{DATASET}, {args.threads} thread(s), batch {next(iter(setups.values()))['bs']}, best of {args.rounds} rounds")
    print(f"{'backbone':<9} {'train/s':>9} {'(cpu)':>9} {'vs best':>8} {'eval/s':>9} {'(cpu)':>9} {'epoch s':>8} {'(cpu)':>7}")
    for name, r in rows.items():
        print(f"{name:<9} {r['train_samples_per_s']:9.0f} {r['train_samples_per_cpu_s']:9.0f} "
              f"{r['train_samples_per_s'] / fastest:8.2f} {r['eval_samples_per_s']:9.0f} {r['eval_samples_per_cpu_s']:9.0f} "
              f"{r['epoch_seconds_projected']:8.1f} {r['epoch_cpu_seconds_projected']:7.1f}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = {"dataset": DATASET, "threads": args.threads, "batches": args.batches, "rounds": args.rounds,
           "cpu_count": os.cpu_count(), "load_avg": os.getloadavg(), "backbones": rows}
    (RESULTS / "train.json").write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {RESULTS / 'train.json'}")
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
