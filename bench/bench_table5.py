"""Training throughput of the Table 5 baselines (LRURec, Recformer) beside SASRec, on real MovieLens-100K lists.

Each model's Base run is built by the runs layer (`prepare_run`: the model, task and loop settings its training
uses); all three see the same lists in the same order (`train.batch_size` lists of 100 candidates, each model
reading its own history length). Measured in one process, interleaved round after round so load from other
processes hits them alike (best round kept):
  train   lists/s of the loop's `train_epoch` over the run's first batches: forward, listwise loss, backward,
          clipping, AdamW
  eval    lists/s of scoring the run's first validation batches without gradients (eval mode)
  table   Recformer only: seconds to encode the whole item table, which it does once per epoch (kept out of
          the train and eval timings)
The projected epoch adds the table to the steps over the prepared training split. Ratios are to SASRec.

    python bench/bench_table5.py [--sasrec-batches 20] [--recformer-batches 3] [--rounds 2] [--threads 1]

Writes bench/results/table5.json. Skips with a message when ../shared/data/ml-100k (or UR4REC_SHARED_DATA)
is absent.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import tempfile
from pathlib import Path

import torch

from common import FirstBatches, epoch_runner, machine, missing, prepare, settings, timed, write_result

DATASET = "ml-100k"
MODELS = ("sasrec", "lrurec", "recformer")


def scoring(model, batches: list):
    def run() -> None:
        with torch.no_grad():
            for batch in batches:
                model(batch)

    return run


def refresh_table(model, mode: bool) -> float | None:
    """Bring Recformer's item table up to date for the current weights in `mode`, outside the step timings;
    its seconds in eval mode, where the train phase just before changed the weights, so it is re-encoded for
    sure (in train mode the eval phase already encoded it for these weights)."""
    model.train(mode)
    if not hasattr(model, "item_table"):
        return None
    wall, _ = timed(model.item_table)
    return None if mode else wall


def items_read(model, history: torch.Tensor) -> float:
    """Mean number of history items a model actually reads: Recformer's user text runs out of tokens first."""
    recent = model.recent(history)
    if hasattr(model, "inputs"):
        positions = model.inputs.users(recent).item_positions
        return float(positions.masked_fill(positions > model.inputs.max_items, 0).amax(1).float().mean())
    return float((recent > 0).sum(1).float().mean())


def build_setups(args, s, root: Path) -> tuple[dict, int]:
    from ur4rec.runs.spec import RunSpec
    from ur4rec.runs.training import prepare_run

    setups, n_train = {}, 0
    for name in args.models.split(","):
        run = prepare_run(s, RunSpec(DATASET, name, None, 0), root)
        n = args.recformer_batches if name == "recformer" else args.sasrec_batches
        n_train = run.task.n_train
        valid = list(itertools.islice(run.task.valid.batches(run.cfg.batch_size), n))
        setups[name] = {"model": run.model, "n_batches": n, "lists": min(n * run.cfg.batch_size, n_train),
                        "history_read": run.model.recent(run.task.train.history[:1]).shape[1],
                        "items_read_mean": items_read(run.model, run.task.train.history[:256]),
                        "train": epoch_runner(run.model, run.groups, FirstBatches(run.task, n), run.cfg),
                        "eval": scoring(run.model, valid),
                        "config": dataclasses.asdict(s.backbone_spec(name).config)}
    return setups, n_train


def measure(setups: dict, rounds: int) -> dict[str, dict[str, tuple[float, float]]]:
    best: dict[str, dict[str, tuple[float, float]]] = {n: {} for n in setups}
    for round_ in range(rounds + 1):                 # round 0 warms up
        for name, s in setups.items():
            for kind, mode in (("train", True), ("eval", False)):
                table = refresh_table(s["model"], mode)
                wall, cpu = timed(s[kind])
                if table is not None and round_ and table < best[name].get("table", (float("inf"),))[0]:
                    best[name]["table"] = (table, table)
                if round_ and (kind not in best[name] or wall < best[name][kind][0]):
                    best[name][kind] = (wall, cpu)
    return best


def summarise(setups: dict, best: dict, n_train: int) -> dict[str, dict]:
    rows = {}
    for name, s in setups.items():
        lists = s["lists"]
        (tw, tc), (ew, _) = best[name]["train"], best[name]["eval"]
        table = best[name].get("table", (0.0,))[0]
        rows[name] = {"history_read": s["history_read"], "items_read_mean": s["items_read_mean"],
                      "batches_timed": s["n_batches"],
                      "train_lists_per_s": lists / tw, "train_lists_per_cpu_s": lists / tc,
                      "eval_lists_per_s": lists / ew, "item_table_s": table if "table" in best[name] else None,
                      "epoch_s_projected": n_train / (lists / tw) + table, "config": s["config"]}
    base = rows.get("sasrec")
    for row in rows.values():
        if base:
            row["train_vs_sasrec"] = row["train_lists_per_s"] / base["train_lists_per_s"]
            row["train_cpu_vs_sasrec"] = row["train_lists_per_cpu_s"] / base["train_lists_per_cpu_s"]
            row["epoch_vs_sasrec"] = row["epoch_s_projected"] / base["epoch_s_projected"]
    return rows


def report(rows: dict, args, bs: int, n_train: int) -> None:
    print(f"{DATASET}, {args.threads} thread(s), batch {bs}, {n_train} training lists, best of {args.rounds} rounds")
    print(f"{'model':<10} {'items':>6} {'train/s':>8} {'(cpu)':>8} {'vs sasrec':>9} {'(cpu)':>6} {'eval/s':>8} "
          f"{'table s':>8} {'epoch s':>8} {'vs sasrec':>9}")
    for name, r in rows.items():
        table = f"{r['item_table_s']:8.1f}" if r["item_table_s"] is not None else f"{'-':>8}"
        print(f"{name:<10} {r['items_read_mean']:6.1f} {r['train_lists_per_s']:8.1f} {r['train_lists_per_cpu_s']:8.1f} "
              f"{r.get('train_vs_sasrec', float('nan')):9.3f} {r.get('train_cpu_vs_sasrec', float('nan')):6.3f} "
              f"{r['eval_lists_per_s']:8.1f} {table} {r['epoch_s_projected']:8.1f} "
              f"{r.get('epoch_vs_sasrec', float('nan')):8.1f}x")
    print("items: mean history items read per list; (cpu): per CPU second, steadier than wall time on a busy machine")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sasrec-batches", type=int, default=20, help="timed batches per round (SASRec, LRURec)")
    parser.add_argument("--recformer-batches", type=int, default=3, help="timed batches per round (Recformer)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--out", type=Path, default=None, help="default: bench/results/table5.json")
    args = parser.parse_args()
    s = settings(["train.progress=false", f"train.threads={args.threads}"])
    if missing(s, DATASET):
        return
    with tempfile.TemporaryDirectory(prefix="bench-table5-") as tmp:
        prepare(s, DATASET, Path(tmp))
        setups, n_train = build_setups(args, s, Path(tmp))
        best = measure(setups, args.rounds)
    bs = s.train.batch_size
    rows = summarise(setups, best, n_train)
    report(rows, args, bs, n_train)
    write_result("table5", {"dataset": DATASET, "threads": args.threads, "batch_size": bs, "n_train_lists": n_train,
                            "rounds": args.rounds, "machine": machine(), "models": rows}, args.out)


if __name__ == "__main__":
    main()
