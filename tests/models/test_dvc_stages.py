"""The train and evaluate stages under a real `dvc repro` in a throw-away git+DVC repository."""

from __future__ import annotations

import json

import polars as pl
import pytest

from tests.fixtures.raw import write_ml100k
from tests.retriever.test_dvc_stages import write_llm_outputs

pytestmark = pytest.mark.slow

BACKBONES = ["dlcm", "sasrec"]
SMALL = [f"backbone.{b}.dim=16" for b in BACKBONES] + ["backbone.sasrec.history_len=20"]


RUN_STAGES = ("train", "pretrain", "train_aug", "evaluate")  # with variants=[] the middle two only record that


def stages(seed: int, backbones=BACKBONES) -> list[str]:
    return sorted(f"{stage}@ml-100k-{b}-{seed}" for stage in RUN_STAGES for b in backbones)


def test_train_and_evaluate_rerun_only_on_what_they_read(dvc_project):
    project = dvc_project(
        "datasets=[ml-100k]", f"backbones=[{','.join(BACKBONES)}]", "variants=[]", "prepare.n_candidates=20",
        "prepare.eval_samples_per_user=2", "prepare.train_samples_per_user=3", "prepare.llm_history_len=5",
        "train.epochs=2", "train.progress=false", "evaluate.progress=false", *SMALL,
    )
    write_ml100k(project.root / "mirror" / "ml-100k", n_users=60)
    project.repro("prepare@ml-100k")
    write_llm_outputs(project.root, "ml-100k")  # generation has its own tests; the evaluation reads the vectors
    project.run("dvc", "commit", "-f", "generate@ml-100k")
    first = project.ran_stages(project.repro("evaluate"))
    assert first == sorted(["encode@ml-100k", *stages(0)])

    run = project.root / "data" / "ml-100k" / "runs" / "sasrec" / "seed0"
    metrics = json.loads((run / "eval" / "base" / "metrics.json").read_text())
    assert {"map@1", "ndcg@1", "map@20", "ndcg@20", "n_samples", "n_users"} <= set(metrics)
    assert json.loads((run / "metrics.json").read_text()) == {"base": metrics}  # variants=[]: Base alone
    per_sample = pl.read_parquet(run / "eval" / "base" / "per_sample.parquet")
    test = pl.read_parquet(project.root / "data" / "ml-100k" / "prepared" / "test.parquet")
    assert per_sample["sample_id"].sort().to_list() == test["sample_id"].sort().to_list()
    assert per_sample["ndcg@10"].mean() == pytest.approx(metrics["ndcg@10"])
    shown = project.run("dvc", "metrics", "show", "--json").stdout
    assert "ndcg@10" in shown and "runs/dlcm/seed0/metrics.json" in shown

    assert project.ran_stages(project.repro("evaluate")) == []           # a second run does nothing
    # the data stages never read model code; editing one backbone's module reruns that backbone's stages alone
    for stage in ("fetch", "prepare", "generate", "encode"):
        files = json.loads((project.root / "data" / "code" / f"{stage}.json").read_text())["files"]
        assert files and not [f for f in files if f.startswith("ur4rec/models/")], stage
    with open(project.root / "ur4rec" / "models" / "sasrec.py", "a", encoding="utf-8") as handle:
        handle.write("# a comment changes the file, so its backbone's fingerprint\n")
    assert project.ran_stages(project.repro("evaluate"), code=True) == sorted(["code", *stages(0, ["sasrec"])])
    project.set_params("train.epochs=3")                                  # a loop setting: every training
    assert project.ran_stages(project.repro("evaluate")) == stages(0)
    # one backbone's block retrains only that backbone; an evaluation setting re-evaluates every run
    project.set_params("backbone.dlcm.dropout=0.2", "evaluate.ks=[1,10]")
    assert project.ran_stages(project.repro("evaluate")) == sorted(
        [f"{stage}@ml-100k-dlcm-0" for stage in ("train", "pretrain", "train_aug")]
        + [f"evaluate@ml-100k-{b}-0" for b in BACKBONES])
    project.set_params("seeds=[0, 1]")                                    # a new seed runs only its own stages
    assert project.ran_stages(project.repro("evaluate")) == stages(1)
    assert set(json.loads((run / "eval" / "base" / "metrics.json").read_text())) == {
        "map@1", "ndcg@1", "map@10", "ndcg@10", "n_samples", "n_users"}
