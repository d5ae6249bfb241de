"""A fake evaluated project for the report page: prepared files, LLM outputs and, per run, what the evaluation
stage writes (per-list metrics computed from the ranks it saves, the ranks, UR4Rec's attention over Z for the
drill-down sample) plus training and pre-training logs. Used by the page's tests and by bench/bench_report_html.py
(there on the real prepared ml-100k lists)."""

from __future__ import annotations

import zlib

import numpy as np
import polars as pl

from ur4rec.eval.drilldown import candidate_ranks, sample_users
from ur4rec.io import write_json, write_parquet
from ur4rec.paths import DatasetPaths
from ur4rec.report.config import ReportConfig
from ur4rec.report.plan import Arm, ReportPlan
from ur4rec.retriever.variants import VariantConfig

KS = [1, 5, 10, 20]
ARMS = {"control": "none", "bert": "bert", "llm": "llm", "kar": "kar", "ur4rec": "ur4rec"}


def make_plan(dataset="toy", backbones=("prm", "gru4rec"), variants=("control", "llm", "kar", "ur4rec"), seeds=(0,),
              n_candidates=20, drilldown_users=100, sweep=()) -> ReportPlan:
    arms = [Arm("base", None)]
    for name in variants:
        kind = ARMS[name]
        arms.append(Arm(name, VariantConfig(kind=kind), {b: 8 for b in backbones} if kind == "ur4rec" else {}))
    for k in sweep:
        arms.append(Arm(f"ur4rec-k{k}", VariantConfig(kind="ur4rec", n_proxies=k, family="proxy_sweep"),
                        {b: k for b in backbones}))
    return ReportPlan(dataset, list(backbones), arms, list(seeds), KS, n_candidates, ReportConfig(bootstrap=200),
                      drilldown_users=drilldown_users)


def write_prepared(root, dataset="toy", n_users=12, lists=3, n_items=200, n_candidates=20, history=5,
                   title=lambda i: f"Movie {i} (1999)", preference=lambda u: f"User {u} likes slow films.") -> None:
    """items, users (with their LLM history), test lists, and the LLM's texts and stats."""
    rng = np.random.default_rng(1)
    paths = DatasetPaths(dataset, root)
    items = np.arange(1, n_items + 1)
    write_parquet(paths.prepared / "items.parquet", pl.DataFrame({"item_id": items, "title": [title(i) for i in items]}))
    users = np.arange(1, n_users + 1)
    write_parquet(paths.prepared / "users.parquet", pl.DataFrame({
        "user_id": users, "raw_id": [f"u{u}" for u in users],
        "llm_history": [rng.choice(items, 4, replace=False).tolist() for _ in users]}))
    rows = {"sample_id": [], "user_id": [], "target": [], "history": [], "candidates": [], "target_pos": []}
    for u in users:
        for j in range(lists):
            cands = rng.choice(items, n_candidates, replace=False)
            pos = int(rng.integers(n_candidates))
            rows["sample_id"].append(int(u) * 10**6 + j)
            rows["user_id"].append(int(u))
            rows["target"].append(int(cands[pos]))
            rows["history"].append(rng.choice(items, history, replace=False).tolist())
            rows["candidates"].append(cands.tolist())
            rows["target_pos"].append(pos)
    write_parquet(paths.prepared / "test.parquet", pl.DataFrame(rows))
    write_llm(root, dataset, users, items, preference)


def write_llm(root, dataset, users, items, preference) -> None:
    paths = DatasetPaths(dataset, root)
    write_parquet(paths.llm / "user_preferences.parquet", pl.DataFrame({
        "user_id": users, "text": [preference(int(u)) for u in users], "status": ["ok"] * len(users)}))
    write_parquet(paths.llm / "item_knowledge.parquet", pl.DataFrame({
        "item_id": items, "text": [f"Item {i}: a drama." for i in items],
        "status": ["ok"] * (len(items) - 1) + ["truncated"]}))
    write_json(paths.llm / "stats.json", {"model": "fake-llm", "status": {"user": {"ok": len(users)},
                                                                        "item": {"ok": len(items)}},
                                          "generation_seconds": 12.5, "generated": 10, "cache_hits": 2,
                                          "output_tokens_per_s": 40.0})
    write_json(paths.encode_report, {"kinds": {"user_pref": {"n": len(users), "replaced": {}, "policy": "raw_text"},
                                               "item_know": {"n": len(items), "replaced": {"empty": 1},
                                                             "policy": "raw_text"}},
                                     "seconds": 3.25})


def write_runs(root, plan: ReportPlan, shifts: dict[str, float] | None = None, z_history: int | dict = 5,
               with_ranks=True) -> None:
    """What evaluate, train and pretrain write for every (backbone, arm, seed) of the plan, on the prepared test
    lists; an arm's `shift` raises its target's score."""
    paths = DatasetPaths(plan.dataset, root)
    test = pl.read_parquet(paths.prepared / "test.parquet")
    n, c = test.height, len(test["candidates"][0])
    target_pos = test["target_pos"].to_numpy()
    users = test["user_id"].to_numpy()
    sampled = np.isin(users, sample_users(users, plan.drilldown_users))
    for backbone in plan.backbones:
        z_len = z_history[backbone] if isinstance(z_history, dict) else z_history
        for arm in plan.arms:
            shift = (shifts or {}).get(arm.name, 0.5 if arm.variant is not None and arm.variant.uses_retriever else 0.2)
            for seed in plan.seeds:
                rng = np.random.default_rng([seed, zlib.crc32(f"{backbone}/{arm.name}".encode())])
                scores = rng.normal(size=(n, c))
                scores[np.arange(n), target_pos] += shift + 1.0
                ranks = candidate_ranks(scores)
                target_rank = ranks[np.arange(n), target_pos].astype(np.float64)
                metrics = {}
                for k in plan.ks:
                    hit = target_rank <= k
                    metrics[f"map@{k}"] = np.where(hit, 1 / target_rank, 0.0)
                    metrics[f"ndcg@{k}"] = np.where(hit, 1 / np.log2(target_rank + 1), 0.0)
                run = paths.run(backbone, arm.name, seed)
                write_parquet(run.eval / "per_sample.parquet", pl.DataFrame({
                    "sample_id": test["sample_id"], "user_id": test["user_id"], **metrics}))
                write_json(run.eval / "metrics.json", {m: float(v.mean()) for m, v in metrics.items()})
                if with_ranks:
                    write_parquet(run.eval / "ranks.parquet", pl.DataFrame({
                        "sample_id": test["sample_id"], "ranks": pl.Series(ranks, dtype=pl.Array(pl.Int16, c))}))
                history = [{"epoch": e, "train_loss": 2.0 / (e + 1), "seconds": 1.5, "validation_seconds": 0.2,
                            "valid_ndcg@10": 0.3 + 0.02 * e + shift / 10} for e in range(5)]
                write_json(run.train / "fit.json", {"select_metric": "ndcg@10", "best_epoch": 4, "best_valid": 0.4,
                                                    "epochs_run": 5, "history": history})
                if arm.variant is not None and arm.variant.uses_retriever:
                    write_json(run.pretrain / "fit.json", {"best_epoch": 2, "epochs_run": 3, "history": [
                        {"epoch": e, "train_cl": 2.2 - 0.3 * e, "valid_cl": 2.3 - 0.2 * e, "valid_hit@1": 0.2,
                         "valid_pim": 0.6, "valid_pim_acc": 0.7, "seconds": 4.0} for e in range(3)]})
                    write_attention(run.eval / "attention.parquet", test.filter(pl.Series(sampled)),
                                    scores[sampled], z_len, rng)


def write_attention(path, test: pl.DataFrame, scores: np.ndarray, z_len: int, rng, layers=2) -> None:
    """attention.parquet as the evaluation writes it, weights drawn from a Dirichlet over the real keys."""
    out = {k: [] for k in ("sample_id", "user_id", "z_items", "target", "top", "target_weights", "top_weights")}
    for row, s in zip(test.iter_rows(named=True), scores):
        z = [0, *row["history"][-z_len:]]
        out["sample_id"].append(row["sample_id"])
        out["user_id"].append(row["user_id"])
        out["z_items"].append(z)
        out["target"].append(row["target"])
        out["top"].append(row["candidates"][int(np.argmax(s))])
        out["target_weights"].append(rng.dirichlet(np.ones(len(z)), layers).tolist())
        out["top_weights"].append(rng.dirichlet(np.ones(len(z)), layers).tolist())
    weights = pl.List(pl.List(pl.Float32))
    write_parquet(path, pl.DataFrame(out, schema={"sample_id": pl.Int64, "user_id": pl.Int64, "z_items": pl.List(pl.Int64),
                                                  "target": pl.Int64, "top": pl.Int64, "target_weights": weights,
                                                  "top_weights": weights}))
