"""`ur4rec train`, `ur4rec evaluate` and `ur4rec compare` on a prepared fixture, in-process."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml
from typer.testing import CliRunner

from tests.conftest import REPO_ROOT, dataset_entry
from ur4rec.cli.app import app
from ur4rec.config import apply_override

pytestmark = pytest.mark.slow


def test_train_evaluate_compare(prepared_dir, tmp_path, monkeypatch):
    shutil.copytree(prepared_dir / "clusters", tmp_path / "data" / "clusters")
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    for item in (dataset_entry("clusters"), "datasets=[clusters]", "backbones=[dlcm, setrank]", "train.epochs=2",
                 "train.progress=false", "evaluate.progress=false", "backbone.dlcm.dim=16",
                 "backbone.setrank={dim: 16, inducing_points: 4, user_history: true}"):
        apply_override(params, item)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    for backbone in ("dlcm", "setrank"):
        trained = runner.invoke(app, ["train", "-d", "clusters", "-b", backbone, "--seed", "3"])
        assert trained.exit_code == 0, trained.output
        assert json.loads(trained.output.strip().splitlines()[-1])["epochs_run"] == 2
        evaluated = runner.invoke(app, ["evaluate", "-d", "clusters", "-b", backbone, "--seed", "3"])
        assert evaluated.exit_code == 0, evaluated.output
    runs = tmp_path / "data" / "clusters" / "runs"
    compared = runner.invoke(app, ["compare", str(runs / "dlcm/seed3/eval/base/per_sample.parquet"),
                                   str(runs / "setrank/seed3/eval/base/per_sample.parquet"), "-m", "ndcg@10"])
    assert compared.exit_code == 0, compared.output
    out = json.loads(compared.output)
    assert out["n_users"] == 80 and out["ci95"][0] <= out["diff"] <= out["ci95"][1]

    missing = runner.invoke(app, ["evaluate", "-d", "clusters", "-b", "prm"])
    assert missing.exit_code == 1 and "checkpoint not found" in missing.output
    unknown = runner.invoke(app, ["train", "-d", "clusters", "-b", "bert4rec"])
    assert unknown.exit_code == 1 and "unknown backbone 'bert4rec'" in unknown.output
