"""Retriever pre-training and joint training from params under torchrun: with `train.distributed.nproc: 2`
the CLI command runs itself again as two gloo processes; rank 0 writes the same files as one process would,
and the curves match one process's. In float32 (bf16 off) the losses differ by <= 5e-6 relative (measured);
1e-4 leaves a margin of 20."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import yaml

from tests.conftest import REPO_ROOT
from tests.retriever.conftest import tiny_params
from ur4rec.runs.spec import RunSpec

pytestmark = pytest.mark.slow

RUN = RunSpec("fx", "prm", "ur4rec", 0)
# Continuous values only: joint training selects on NDCG over a dozen validation lists here, which moves in
# steps of ~0.02 when one near-tie of scores 1e-6 apart swaps (the loop's own parity test compares NDCG).
COMPARED = {"pretrain": ("train_loss", "valid_loss"), "train": ("train_loss",)}


def cli(project, *args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "ur4rec", *args, "--params", "params.yaml"], cwd=project,
                          env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def files(folder) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_pretraining_and_joint_training_on_two_processes_follow_one(tiny_project, tiny_bert, tmp_path):
    root, _ = tiny_project
    runs, printed = {}, {}
    for nproc in (1, 2):
        project = tmp_path / f"nproc{nproc}"
        shutil.copytree(root, project / "data")  # prepared, vectors and the Base runs
        params = tiny_params(tiny_bert, "backbone.prm.dropout=0.0", "retriever.arch.bf16=false",
                             f"train.distributed.nproc={nproc}")
        (project / "params.yaml").write_text(yaml.safe_dump(params))
        printed[nproc] = [cli(project, command, "-d", "fx", "-b", "prm", "-v", "ur4rec").stdout.splitlines()
                          for command in ("pretrain", "train")]
        runs[nproc] = RUN.paths(project / "data")
    assert [len(lines) for lines in printed[2]] == [len(lines) for lines in printed[1]]  # rank 0 alone prints
    for part in ("pretrain", "train"):
        assert files(getattr(runs[1], part)) == files(getattr(runs[2], part))
        one, two = (json.loads((getattr(runs[n], part) / "fit.json").read_text())["history"] for n in (1, 2))
        assert len(one) == len(two)
        for a, b in zip(one, two):
            for key in COMPARED[part]:
                assert b[key] == pytest.approx(a[key], rel=1e-4), (part, key, a, b)
    assert files(runs[1].live) == files(runs[2].live)
    assert not runs[2].resume.exists() and not runs[2].pretrain_resume.exists()
