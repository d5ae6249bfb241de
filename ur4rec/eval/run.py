"""The evaluation stage: score a trained run on the TEST split and save per-sample and mean metrics.

Outputs under `data/<ds>/runs/<backbone>/<variant>/eval/`:
    per_sample.parquet   `sample_id` + one float column per metric (`map@1`, `ndcg@1`, ...), so a paired
                         t-test between two runs is one join (`ur4rec.eval.significance.compare_runs`)
    metrics.json         the means (for `dvc metrics show` / `dvc metrics diff`) and `n_samples`
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import polars as pl

from ur4rec.config import get_path, section
from ur4rec.eval.metrics import per_sample_metrics
from ur4rec.io import write_json, write_parquet
from ur4rec.train.config import EvalConfig
from ur4rec.train.loop import labels_of, predict
from ur4rec.train.run import ModelFactory, base_factory, load_trained, trained_context


def evaluate_run(dataset: str, backbone: str, variant: str, params: Mapping[str, Any],
                 factory: ModelFactory = base_factory, root: Path | None = None) -> dict[str, float]:
    """Evaluate one trained run; returns the mean metrics it wrote."""
    cfg = section(EvalConfig, get_path(params, "evaluate", {}), where="evaluate")
    ctx, saved = trained_context(dataset, backbone, variant, params, root)
    model = load_trained(ctx, factory)
    test = ctx.load_split("test", saved.get("history_len"))
    started = time.perf_counter()
    scores = predict(model, test, cfg.batch_size, progress=cfg.progress)
    seconds = time.perf_counter() - started
    per_sample = per_sample_metrics(scores, labels_of(test), cfg.ks)
    eval_dir = ctx.run_dir / "eval"
    frame = pl.DataFrame({"sample_id": test.sample_ids.numpy(), **per_sample})
    write_parquet(eval_dir / "per_sample.parquet", frame)
    means = {name: float(np.mean(values)) for name, values in per_sample.items()}
    write_json(eval_dir / "metrics.json", {**means, "n_samples": len(test)})
    print(f"{dataset}/{backbone}/{variant}: {len(test)} test samples scored in {seconds:.2f}s; "
          + ", ".join(f"{k}={v:.4f}" for k, v in means.items()))
    return means


def evaluate_base(dataset: str, backbone: str, params: Mapping[str, Any], root: Path | None = None) -> dict[str, float]:
    """The `evaluate` stage for the Base variant."""
    return evaluate_run(dataset, backbone, "base", params, root=root)


def evaluate_any(dataset: str, backbone: str, variant: str, params: Mapping[str, Any],
                 root: Path | None = None) -> dict[str, float]:
    """The `evaluate` stage for any variant: Base here, augmented variants through the retriever's factory."""
    if variant == "base":
        return evaluate_base(dataset, backbone, params, root)
    from ur4rec.retriever.joint import evaluate_variant

    return evaluate_variant(dataset, backbone, variant, params, root=root)
