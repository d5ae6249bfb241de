"""Training throughput of the Table 5 baselines (LRURec, Recformer) beside SASRec, on real MovieLens-100K lists.

All three models see the same training batches (`train.batch_size` lists of 100 candidates, histories kept to
`prepare.history_len` = 150; each model reads its own tail of them). Measured in one process, interleaved
round after round so load from other processes hits them alike (best round kept):
  train   lists/s of the training step: forward, listwise loss, backward, AdamW
  eval    lists/s of scoring without gradients (eval mode)
  table   Recformer only: seconds to encode the whole item table, which it does once per epoch
The projected epoch adds the table to the steps over the prepared training split. Ratios are to SASRec.

    python bench/bench_table5.py [--sasrec-batches 20] [--recformer-batches 3] [--rounds 2] [--threads 1]

Writes bench/results/table5.json. Skips with a message when ../shared/data/ml-100k (or UR4REC_SHARED_DATA)
is absent.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SHARED = Path(os.environ.get("UR4REC_SHARED_DATA", REPO.parent / "shared" / "data"))
RESULTS = REPO / "bench" / "results"
DATASET = "ml-100k"
MODELS = ("sasrec", "lrurec", "recformer")


def timed(fn) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def fixed_batches(data, batch_size: int, n_batches: int) -> list:
    return [data.take(torch.arange(i * batch_size, (i + 1) * batch_size) % len(data)) for i in range(n_batches)]


def train_steps(model, batches: list, lr: float):
    from ur4rec.train.loop import backbone_loss

    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)

    def run() -> None:
        for batch in batches:
            loss = backbone_loss(model(batch), batch.target_pos)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    return run


def scoring(model, batches: list):
    def run() -> None:
        with torch.no_grad():
            for batch in batches:
                model(batch)

    return run


def table_seconds(model, timed_refresh: bool) -> float | None:
    """Bring Recformer's item table up to date for the current weights and mode (outside the step timings).

    Timed in eval mode only: the train phase just before changed the weights, so the table is re-encoded
    there for sure, while in train mode it was already encoded for these weights by the eval phase."""
    if not hasattr(model, "item_table"):
        return None
    wall, _ = timed(model.item_table)
    return wall if timed_refresh else None


def items_read(model, history: torch.Tensor) -> float:
    """Mean number of history items a model actually reads: Recformer's user text runs out of tokens first."""
    recent = model.recent(history)
    if hasattr(model, "inputs"):
        positions = model.inputs.users(recent).item_positions
        return float(positions.masked_fill(positions > model.inputs.max_items, 0).amax(1).float().mean())
    return float((recent > 0).sum(1).float().mean())


def build_setups(args, params, root: Path) -> tuple[dict, int]:
    from ur4rec import models
    from ur4rec.config import get_path
    from ur4rec.train.batch import RerankData
    from ur4rec.train.catalog import read_catalog

    prepared = root / DATASET / "prepared"
    catalog = read_catalog(prepared / "items.parquet", with_texts=True)
    history_len = params["prepare"]["history_len"]
    train = RerankData.from_parquet(prepared / "train.parquet", history_len, catalog.n_items)
    test = RerankData.from_parquet(prepared / "test.parquet", history_len, catalog.n_items)
    bs = params["train"]["batch_size"]
    setups = {}
    for name in args.models.split(","):
        cfg = models.make_config(name, get_path(params, f"backbone.{name}", {}))
        torch.manual_seed(0)
        model = models.build(name, cfg, catalog)
        n = args.recformer_batches if name == "recformer" else args.sasrec_batches
        setups[name] = {"model": model, "n_batches": n, "lr": cfg.lr, "history_read": model.recent(train.history[:1]).shape[1],
                        "items_read_mean": items_read(model, train.history[:256]),
                        "train": train_steps(model, fixed_batches(train, bs, n), cfg.lr),
                        "eval": scoring(model, fixed_batches(test, bs, n)),
                        "config": dataclasses.asdict(cfg)}
    return setups, len(train)


def measure(setups: dict, rounds: int) -> dict[str, dict[str, tuple[float, float]]]:
    best: dict[str, dict[str, tuple[float, float]]] = {n: {} for n in setups}
    for round_ in range(rounds + 1):                 # round 0 warms up
        for name, s in setups.items():
            model = s["model"]
            for kind, mode in (("train", True), ("eval", False)):
                model.train(mode)
                table = table_seconds(model, timed_refresh=not mode)
                wall, cpu = timed(s[kind])
                if table is not None and round_ and table < best[name].get("table", (float("inf"),))[0]:
                    best[name]["table"] = (table, table)
                if round_ and (kind not in best[name] or wall < best[name][kind][0]):
                    best[name][kind] = (wall, cpu)
    return best


def summarise(setups: dict, best: dict, n_train: int, bs: int) -> dict[str, dict]:
    rows = {}
    for name, s in setups.items():
        lists = s["n_batches"] * bs
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sasrec-batches", type=int, default=20, help="timed batches per round (SASRec, LRURec)")
    parser.add_argument("--recformer-batches", type=int, default=3, help="timed batches per round (Recformer)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--out", type=Path, default=RESULTS / "table5.json")
    args = parser.parse_args()
    if not (SHARED / DATASET).exists():
        print(f"skipped: real dataset {DATASET!r} not found at {SHARED / DATASET} (set UR4REC_SHARED_DATA); "
              "nothing measured")
        return

    from ur4rec.config import load_params
    from ur4rec.data.prepare import prepare_dataset

    torch.set_num_threads(args.threads)
    params = load_params(REPO / "params.yaml")
    root = Path(tempfile.mkdtemp(prefix="bench-table5-"))
    try:
        prepare_dataset(params, DATASET, raw_dir=SHARED / DATASET, out=root / DATASET / "prepared")
        setups, n_train = build_setups(args, params, root)
        best = measure(setups, args.rounds)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    bs = params["train"]["batch_size"]
    rows = summarise(setups, best, n_train, bs)
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
    out = {"dataset": DATASET, "machine": f"{os.cpu_count()} CPU cores (shared), no GPU", "threads": args.threads,
           "batch_size": bs, "n_train_lists": n_train, "rounds": args.rounds, "load_avg": os.getloadavg(),
           "models": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
