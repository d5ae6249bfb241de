"""`ur4rec train`, `ur4rec evaluate` and `ur4rec compare` on a prepared fixture, in-process."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml
from typer.testing import CliRunner

from tests.models.conftest import TINY
from ur4rec.cli import app

pytestmark = pytest.mark.slow


def test_train_evaluate_compare(prepared_dir, tmp_path, monkeypatch):
    shutil.copytree(prepared_dir / "clusters", tmp_path / "data" / "clusters")
    params = {"train": {"epochs": 2, "progress": False, "threads": 1},
              "backbone": {"dlcm": TINY["dlcm"], "setrank": TINY["setrank"]}, "evaluate": {"progress": False}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    for backbone in ("dlcm", "setrank"):
        trained = runner.invoke(app, ["train", "-d", "clusters", "-b", backbone, "-S", "train.seed=3"])
        assert trained.exit_code == 0, trained.output
        assert json.loads(trained.output.strip().splitlines()[-1])["epochs_run"] == 2
        evaluated = runner.invoke(app, ["evaluate", "-d", "clusters", "-b", backbone])
        assert evaluated.exit_code == 0, evaluated.output
    runs = tmp_path / "data" / "clusters" / "runs"
    compared = runner.invoke(app, ["compare", str(runs / "dlcm/base/eval/per_sample.parquet"),
                                   str(runs / "setrank/base/eval/per_sample.parquet"), "-m", "ndcg@10"])
    assert compared.exit_code == 0, compared.output
    assert json.loads(compared.output)["n"] == 80

    missing = runner.invoke(app, ["evaluate", "-d", "clusters", "-b", "prm"])
    assert missing.exit_code == 1 and "no trained run" in missing.output
    unknown = runner.invoke(app, ["train", "-d", "clusters", "-b", "bert4rec"])
    assert unknown.exit_code == 1 and "unknown backbone" in unknown.output
