"""The train and evaluate stages under a real `dvc repro` in a throw-away git+DVC repository."""

from __future__ import annotations

import json

import polars as pl
import pytest

from tests.fixtures.raw import write_ml100k

pytestmark = pytest.mark.slow

BACKBONES = ["dlcm", "sasrec"]
OURS = sorted(f"{stage}@ml-100k-{b}" for stage in ("train", "evaluate") for b in BACKBONES)
SMALL = [f"backbone.{b}.dim=16" for b in BACKBONES] + ["backbone.sasrec.history_len=20"]


def test_train_and_evaluate_rerun_only_on_what_they_read(dvc_project):
    project = dvc_project(
        "datasets=[ml-100k]", f"backbones=[{','.join(BACKBONES)}]", "prepare.n_candidates=20",
        "train.epochs=2", "train.progress=false", "evaluate.progress=false", *SMALL,
    )
    write_ml100k(project.root / "mirror" / "ml-100k", n_users=60)
    first = project.ran_stages(project.repro("evaluate"))
    assert first == sorted(["fetch@ml-100k", "prepare@ml-100k", *OURS])

    run = project.root / "data" / "ml-100k" / "runs" / "sasrec" / "base"
    metrics = json.loads((run / "eval" / "metrics.json").read_text())
    assert {"map@1", "ndcg@1", "map@20", "ndcg@20", "n_samples"} <= set(metrics)
    per_sample = pl.read_parquet(run / "eval" / "per_sample.parquet")
    test = pl.read_parquet(project.root / "data" / "ml-100k" / "prepared" / "test.parquet")
    assert per_sample["sample_id"].sort().to_list() == test["sample_id"].sort().to_list()
    assert per_sample["ndcg@10"].mean() == pytest.approx(metrics["ndcg@10"])
    shown = project.run("dvc", "metrics", "show", "--json").stdout
    assert "ndcg@10" in shown and "runs/dlcm/base/eval/metrics.json" in shown

    assert project.ran_stages(project.repro("evaluate")) == []           # a second run does nothing
    project.set_params("train.epochs=3")                                  # a loop setting: both backbones
    assert project.ran_stages(project.repro("evaluate")) == OURS
    # one backbone's block retrains only that backbone; an evaluation setting re-evaluates every run
    project.set_params("backbone.dlcm.dropout=0.2", "evaluate.ks=[1,10]")
    assert project.ran_stages(project.repro("evaluate")) == sorted(
        ["train@ml-100k-dlcm", *(f"evaluate@ml-100k-{b}" for b in BACKBONES)])
    assert set(json.loads((run / "eval" / "metrics.json").read_text())) == {"map@1", "ndcg@1", "map@10", "ndcg@10",
                                                                           "n_samples"}
