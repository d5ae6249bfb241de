"""Score a trained run on the TEST split, the only place the test split is read.

Outputs under the run's `eval/<arm>/` (`data/<ds>/runs/<backbone>/seed<k>/eval/<arm>/`):
    per_sample.parquet   `sample_id`, `user_id` + one float column per metric (`map@1`, `ndcg@1`, ...)
    metrics.json         the means over lists, `n_samples`, `n_users`
and, for the evaluation stage of a backbone and seed, `seed<k>/metrics.json`: every arm's means by arm (what
`dvc metrics show` lists).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import polars as pl

from ur4rec.eval.metrics import per_sample_metrics
from ur4rec.io import write_json, write_parquet
from ur4rec.paths import DATA_ROOT, DatasetPaths
from ur4rec.runs.model import build_model, catalog_of, history_len
from ur4rec.runs.settings import Settings
from ur4rec.runs.spec import RunSpec, load_split
from ur4rec.train.checkpoint import load_weights
from ur4rec.train.determinism import make_repeatable
from ur4rec.train.loop import WEIGHTS_FILE
from ur4rec.train.rerank import labels_of, predict

PER_SAMPLE_FILE = "per_sample.parquet"
METRICS_FILE = "metrics.json"


def evaluate(s: Settings, spec: RunSpec, root: Path = DATA_ROOT) -> dict[str, float]:
    """Evaluate the run's best checkpoint; returns the mean metrics it wrote."""
    cfg = s.train_config(spec.backbone, spec.seed, joint=spec.variant is not None)
    make_repeatable(spec.seed, cfg.threads, cfg.deterministic)
    paths = spec.paths(root)
    catalog = catalog_of(s, spec, root)
    model, _ = build_model(s, spec, catalog, training=False, root=root)
    load_weights(model, paths.train / WEIGHTS_FILE).eval()
    test = load_split(paths.dataset, "test", history_len(s, spec), catalog.n_items)
    started = time.perf_counter()
    scores = predict(model, test, s.evaluate.batch_size, progress=s.evaluate.progress)
    seconds = time.perf_counter() - started
    per_sample = per_sample_metrics(scores, labels_of(test), s.evaluate.ks)
    frame = pl.DataFrame({"sample_id": test.sample_ids.numpy(), "user_id": test.user_ids.numpy(), **per_sample})
    write_parquet(paths.eval / PER_SAMPLE_FILE, frame)
    means = {name: float(np.mean(values)) for name, values in per_sample.items()}
    write_json(paths.eval / METRICS_FILE, {**means, "n_samples": len(test),
                                           "n_users": int(np.unique(test.user_ids.numpy()).size)})
    print(f"{spec}: {len(test)} test lists scored in {seconds:.2f}s; "
          + ", ".join(f"{k}={v:.4f}" for k, v in means.items()))
    return means


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
