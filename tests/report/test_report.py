import json

import numpy as np
import polars as pl
import pytest

from ur4rec.io import write_json, write_parquet
from ur4rec.paths import DatasetPaths
from ur4rec.report.build import build_report, random_expectation

METRICS = [f"{m}@{k}" for m in ("map", "ndcg") for k in (1, 5, 10, 20)]


def _write_run(root, backbone, variant, shift, n=200, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.uniform(0, 0.5, size=n)
    values = {m: np.clip(base + shift + rng.normal(0, 0.01, n), 0, 1) for m in METRICS}
    eval_dir = DatasetPaths("toy", root).run(backbone, variant) / "eval"
    write_parquet(eval_dir / "per_sample.parquet", pl.DataFrame({"sample_id": np.arange(n), **values}))
    write_json(eval_dir / "metrics.json", {**{m: float(v.mean()) for m, v in values.items()}, "n_samples": n})


def test_report_marks_significance_and_draws_plots(tmp_path):
    for bb in ("prm", "gru4rec"):
        _write_run(tmp_path, bb, "base", 0.0)
        _write_run(tmp_path, bb, "kar", 0.05)
        _write_run(tmp_path, bb, "ur4rec", 0.2)
        _write_run(tmp_path, bb, "llm", 0.0)  # identical to Base: never marked
        for k, shift in ((2, 0.1), (8, 0.2)):
            _write_run(tmp_path, bb, f"ur4rec-k{k}", shift)
    params = {"backbones": ["prm", "gru4rec", "sasrec"], "variants": ["llm", "kar", "ur4rec", "ur4rec-k2", "ur4rec-k8"]}
    summary = build_report("toy", params, root=tmp_path)
    out = tmp_path / "report" / "toy"
    md = (out / "results.md").read_text()
    ur4rec_row = next(line for line in md.splitlines() if line.startswith("| prm | ur4rec |"))
    assert ur4rec_row.count("*†") == len(METRICS)
    llm_row = next(line for line in md.splitlines() if line.startswith("| prm | llm |"))
    assert "*" not in llm_row and "†" not in llm_row
    kar_row = next(line for line in md.splitlines() if line.startswith("| prm | kar |"))
    assert "*" in kar_row and "†" not in kar_row
    assert "sasrec/base" in summary["missing"]
    assert summary["runs"]["prm/ur4rec"]["p_vs_base:ndcg@10"] < 0.05
    assert (out / "bars.png").stat().st_size > 1000 and (out / "proxy_sweep.png").exists()
    assert "## Ablations" in md
    json.loads((out / "results.json").read_text())


def test_random_expectation_matches_known_values():
    # NDCG@10 over 100 candidates with uniform target rank: the reference value of the paper's setting.
    assert random_expectation("ndcg@10", 100) == pytest.approx(0.0454, abs=2e-4)
    assert random_expectation("map@1", 100) == pytest.approx(0.01)
    rng = np.random.default_rng(0)
    from ur4rec.eval.metrics import ndcg_at_k

    scores = rng.random((20000, 100))
    labels = np.zeros_like(scores)
    labels[:, 0] = 1
    assert ndcg_at_k(scores, labels, 10) == pytest.approx(random_expectation("ndcg@10", 100), abs=3e-3)
