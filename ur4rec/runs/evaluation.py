"""Score a trained run on the TEST split, the only place the test split is read.

Outputs under the run's `eval/<arm>/` (`data/<ds>/runs/<backbone>/seed<k>/eval/<arm>/`):
    per_sample.parquet   `sample_id`, `user_id` + one float column per metric (`map@1`, `ndcg@1`, ...)
    metrics.json         the means over lists, `n_samples`, `n_users`
    ranks.parquet        `sample_id` + `ranks` (int16 per candidate, in the list's candidate order; 1 = top,
                         ties pessimistic as in the metrics): the report's drill-down reads the target's rank
                         and the top candidate from it
    attention.parquet    UR4Rec arms only, the drill-down's sampled test users (`evaluate.drilldown_users`):
                         per list the retriever's cross-attention over Z for the target and the top candidate
and, for the evaluation stage of a backbone and seed, `seed<k>/metrics.json`: every arm's means by arm (what
`dvc metrics show` lists).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch

from ur4rec.errors import UserError
from ur4rec.eval.drilldown import candidate_ranks, sample_users
from ur4rec.eval.metrics import per_sample_metrics
from ur4rec.eval.stats import paired_test, per_user_means
from ur4rec.io import write_json, write_parquet
from ur4rec.paths import DATA_ROOT, DatasetPaths
from ur4rec.retriever.augment import AugmentedRecommender, RetrieverAugmenter
from ur4rec.runs.model import build_model, catalog_of
from ur4rec.runs.settings import Settings
from ur4rec.runs.spec import RunSpec, load_split
from ur4rec.train.batch import RerankData
from ur4rec.train.checkpoint import load_weights
from ur4rec.train.determinism import make_repeatable
from ur4rec.train.loop import WEIGHTS_FILE
from ur4rec.train.rerank import labels_of, predict

PER_SAMPLE_FILE = "per_sample.parquet"
METRICS_FILE = "metrics.json"
RANKS_FILE = "ranks.parquet"
ATTENTION_FILE = "attention.parquet"


def evaluate(s: Settings, spec: RunSpec, root: Path = DATA_ROOT) -> dict[str, float]:
    """Evaluate the run's best checkpoint; returns the mean metrics it wrote."""
    run = s.resolve(spec, root)
    make_repeatable(spec.seed, run.loop.threads, run.loop.deterministic)
    paths = run.paths
    catalog = catalog_of(run)
    model, _ = build_model(run, catalog, training=False)
    load_weights(model, paths.train / WEIGHTS_FILE).eval()
    test = load_split(paths.dataset, "test", run.history_len, catalog.n_items)
    started = time.perf_counter()
    scores = predict(model, test, s.evaluate.batch_size, progress=s.evaluate.progress)
    seconds = time.perf_counter() - started
    per_sample = per_sample_metrics(scores, labels_of(test), s.evaluate.ks)
    frame = pl.DataFrame({"sample_id": test.sample_ids.numpy(), "user_id": test.user_ids.numpy(), **per_sample})
    write_parquet(paths.eval / PER_SAMPLE_FILE, frame)
    ranks = candidate_ranks(scores)
    write_parquet(paths.eval / RANKS_FILE, pl.DataFrame({
        "sample_id": test.sample_ids.numpy(), "ranks": pl.Series(ranks, dtype=pl.Array(pl.Int16, ranks.shape[1]))}))
    attention = paths.eval / ATTENTION_FILE
    if run.variant is not None and run.variant.uses_retriever:  # the retriever's attention over Z
        started = time.perf_counter()
        kept = z_attention(model, test, scores, s.evaluate.drilldown_users, s.evaluate.batch_size)
        write_parquet(attention, kept)
        print(f"{spec}: attention over Z kept for {kept.height} lists of {kept['user_id'].n_unique()} sampled "
              f"users in {time.perf_counter() - started:.2f}s")
    else:
        attention.unlink(missing_ok=True)
    means = {name: float(np.mean(values)) for name, values in per_sample.items()}
    write_json(paths.eval / METRICS_FILE, {**means, "n_samples": len(test),
                                           "n_users": int(np.unique(test.user_ids.numpy()).size)})
    print(f"{spec}: {len(test)} test lists scored in {seconds:.2f}s; "
          + ", ".join(f"{k}={v:.4f}" for k, v in means.items()))
    return means


def z_attention(model: AugmentedRecommender, test: RerankData, scores: np.ndarray, n_users: int,
                batch_size: int) -> pl.DataFrame:
    """The retriever's cross-attention over Z (mean over heads, per layer) for the target and for the
    top-scored candidate of every list of the drill-down's sampled users: `sample_id`, `user_id`, `z_items`
    (Z's keys: 0 the user's preference, then the history items' ids; padding left out), `target`, `top`
    (item ids), `target_weights`, `top_weights` (`[n_layers][len(z_items)]`)."""
    users = test.user_ids.numpy()
    rows = np.flatnonzero(np.isin(users, sample_users(users, n_users)))
    top = scores.argmax(1)  # the first of equal top scores
    out: dict[str, list] = {k: [] for k in ("sample_id", "user_id", "z_items", "target", "top", "target_weights",
                                            "top_weights")}
    augmenter: RetrieverAugmenter = model.augmenter
    for start in range(0, rows.size, batch_size):
        idx = rows[start:start + batch_size]
        batch = test.take(torch.as_tensor(idx))
        weights, z_ids, z_mask = augmenter.z_attention(batch, model.backbone.item_repr)
        for j, row in enumerate(idx):
            keep = z_mask[j].numpy()
            target_pos, top_pos = int(batch.target_pos[j]), int(top[row])
            out["sample_id"].append(int(batch.sample_ids[j]))
            out["user_id"].append(int(batch.user_ids[j]))
            out["z_items"].append(z_ids[j].numpy()[keep].tolist())
            out["target"].append(int(batch.candidates[j, target_pos]))
            out["top"].append(int(batch.candidates[j, top_pos]))
            out["target_weights"].append(weights[j, target_pos].numpy()[:, keep].tolist())
            out["top_weights"].append(weights[j, top_pos].numpy()[:, keep].tolist())
    weights_type = pl.List(pl.List(pl.Float32))
    return pl.DataFrame(out, schema={"sample_id": pl.Int64, "user_id": pl.Int64, "z_items": pl.List(pl.Int64),
                                     "target": pl.Int64, "top": pl.Int64, "target_weights": weights_type,
                                     "top_weights": weights_type})


def evaluate_seed(s: Settings, dataset: str, backbone: str, seed: int, root: Path = DATA_ROOT) -> dict[str, dict]:
    """The evaluation stage of one backbone and seed: the Base run and every variant of `variants`.

    One stage for all arms rather than one per arm: DVC rewrites its whole lock file after every stage, and
    at three seeds that bookkeeping cost more than scoring a run. Re-evaluating every arm when one changes
    costs a few seconds. Returns (and writes to `seed<k>/metrics.json`) each arm's `metrics.json` by arm."""
    group = DatasetPaths(dataset, root).seed_runs(backbone, seed)
    metrics = {}
    for variant in [None, *s.variants]:
        spec = RunSpec(dataset, backbone, variant, seed)
        evaluate(s, spec, root)
        metrics[spec.arm] = json.loads((spec.paths(root).eval / METRICS_FILE).read_text(encoding="utf-8"))
    write_json(group.metrics, metrics)
    return metrics


def compare_runs(a: Path, b: Path, metric: str) -> dict[str, Any]:
    """Paired t-test of one metric between two evaluated runs' `per_sample.parquet` on the same test users (a
    user's lists averaged first)."""
    frames = []
    for path in (a, b):
        if not path.exists():
            raise UserError(f"{path}: not found (an eval/per_sample.parquet of an evaluated run)")
        frame = pl.read_parquet(path)
        if metric not in frame.columns or "user_id" not in frame.columns:
            raise UserError(f"{path}: needs columns user_id and {metric}; has {frame.columns}")
        frames.append(per_user_means(frame["user_id"].to_numpy(), frame[metric].to_numpy()))
    if not np.array_equal(frames[0][0], frames[1][0]):
        raise UserError(f"{a} and {b} cover different test users: a paired test needs the same users")
    result = paired_test(frames[0][1], frames[1][1])
    return {"metric": metric, "n_users": result.n_users, "mean_a": result.mean_a, "mean_b": result.mean_b,
            "diff": result.diff, "ci95": [result.ci_low, result.ci_high], "t": result.statistic, "p": result.pvalue}
