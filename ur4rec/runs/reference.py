"""The reference rows (TopPop, item-CF): scored on the very valid and test lists the trained runs are, with the
same metrics, and written in an evaluated run's format so the report's CIs and paired tests take them as they are.

Reading the test lists makes this an evaluation: nothing here trains, and nothing downstream selects on test.
Outputs (`data/<ds>/reference/<scorer>/`): `per_sample.parquet` and `metrics.json` of the TEST lists, as
`ur4rec.runs.evaluation` writes them; `data/<ds>/reference.json`: each scorer's valid and test means (the
stage's DVC metrics; the validation means are what a Base run is compared with when tuning).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from ur4rec.eval import reference
from ur4rec.eval.metrics import per_sample_metrics
from ur4rec.io import write_json, write_parquet
from ur4rec.paths import DATA_ROOT, DatasetPaths
from ur4rec.runs.settings import Settings
from ur4rec.runs.spec import load_split, training_interactions
from ur4rec.train.catalog import read_catalog
from ur4rec.train.rerank import labels_of

PER_SAMPLE_FILE = "per_sample.parquet"
METRICS_FILE = "metrics.json"


def score_references(s: Settings, dataset: str, root: Path = DATA_ROOT) -> dict[str, dict[str, dict[str, float]]]:
    """Score every reference on the valid and test lists; returns (and writes) {scorer: {split: means}}."""
    history_len = s.prepare_for(dataset).history_len  # an unknown dataset fails here, naming the params key
    paths = DatasetPaths(dataset, root)
    if not (paths.prepared / "items.parquet").exists():
        raise FileNotFoundError(f"{paths.prepared}: not prepared; run the prepare stage (dvc repro prepare@{dataset})")
    n_items = read_catalog(paths.prepared / "items.parquet").n_items
    users, items = training_interactions(paths)
    counts = reference.item_counts(items, n_items)
    sim = reference.item_similarity(users, items, n_items)
    summary: dict[str, dict[str, dict[str, float]]] = {name: {} for name in reference.SCORERS}
    for split in ("valid", "test"):
        lists = load_split(paths, split, history_len, n_items)
        candidates, history = lists.candidates.numpy(), lists.history.numpy()
        scores = {"toppop": reference.toppop_scores(candidates, counts),
                  "itemcf": reference.itemcf_scores(history, candidates, sim)}
        for name in reference.SCORERS:
            per_sample = per_sample_metrics(scores[name], labels_of(lists), s.evaluate.ks)
            means = {metric: float(np.mean(values)) for metric, values in per_sample.items()}
            summary[name][split] = means
            if split == "test":
                out = paths.reference / name
                write_parquet(out / PER_SAMPLE_FILE, pl.DataFrame({"sample_id": lists.sample_ids.numpy(),
                                                                   "user_id": lists.user_ids.numpy(), **per_sample}))
                write_json(out / METRICS_FILE, {**means, "n_samples": len(lists),
                                                "n_users": int(np.unique(lists.user_ids.numpy()).size)})
    write_json(paths.reference_metrics, summary)
    for name, by_split in summary.items():
        print(f"{dataset}/reference/{name}: valid ndcg@10={by_split['valid'].get('ndcg@10', float('nan')):.4f}, "
              f"test ndcg@10={by_split['test'].get('ndcg@10', float('nan')):.4f}")
    return summary
