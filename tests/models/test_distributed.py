"""Data-parallel training: two gloo processes under torchrun follow one process at the same global batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from tests.conftest import REPO_ROOT, settings
from tests.models.prepared import write_prepared
from ur4rec.config import ParamsError
from ur4rec.train.batch import RerankData
from ur4rec.train.distributed import World, backend_for

# Float32 sums in another order differ by ~1e-7 relative per step, and Adam's normalised updates carry that
# into the weights at about the same size: measured, the epoch losses differ by <= 4e-8 relative and the weights
# by <= 2e-7 (docs/scaling.md). The bounds leave two orders of margin; slices weighted equally instead of by
# their rows already move the second epoch's loss by 5e-4, and a lost slice far more. Validation is a ranking
# of scores that differ by ~1e-7, so it comes out the same.
LOSS_RTOL = 1e-5
WEIGHT_ATOL = 1e-5


def train(prepared, out, nproc: int) -> dict:
    worker = ["-m", "tests.models.ddp_worker", str(prepared), str(out)]
    launcher = ["-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}"] if nproc > 1 else []
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    proc = subprocess.run([sys.executable, *launcher, *worker], cwd=REPO_ROOT, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads((out / "fit.json").read_text())


@pytest.mark.slow
def test_two_processes_match_one_process_at_equal_global_batch(tmp_path):
    prepared = write_prepared(tmp_path / "prepared", samples={"train": 326, "valid": 80})
    one, two = train(prepared, tmp_path / "one", 1), train(prepared, tmp_path / "two", 2)
    assert one["epochs_run"] == two["epochs_run"] == 4
    for a, b in zip(one["history"], two["history"]):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=LOSS_RTOL), (a, b)
        assert b["valid_ndcg@10"] == pytest.approx(a["valid_ndcg@10"], abs=1e-6), (a, b)
    assert one["history"][-1]["train_loss"] < one["history"][0]["train_loss"] - 0.05  # it did learn
    weights = [load_file(str(tmp_path / run / "model.safetensors")) for run in ("one", "two")]
    assert weights[0].keys() == weights[1].keys()
    for key in weights[0]:
        assert torch.allclose(weights[0][key], weights[1][key], atol=WEIGHT_ATOL), key


def test_ranks_split_every_batch_into_contiguous_slices_that_cover_it():
    data = RerankData(user_ids=torch.arange(7), history=torch.zeros(7, 2, dtype=torch.long),
                      candidates=torch.ones(7, 3, dtype=torch.long), target_pos=torch.zeros(7, dtype=torch.long),
                      sample_ids=torch.arange(7))
    batch = data.take(torch.arange(7))
    for size in (1, 2, 3, 7, 8):
        parts = [batch.rows(World(rank, size).bounds(len(batch))) for rank in range(size)]
        assert torch.cat([p.sample_ids for p in parts]).tolist() == list(range(7))
        assert max(map(len, parts)) - min(map(len, parts)) <= 1


def test_distributed_settings_are_checked_before_any_process_starts():
    assert settings("train.distributed.nproc=4").train_config("dlcm", 0).distributed.nproc == 4
    with pytest.raises(ParamsError, match="nproc must be >= 1"):
        settings("train.distributed.nproc=0")
    with pytest.raises(ParamsError, match="backend must be one of"):
        settings("train.distributed.backend=mpi")
    assert backend_for("auto", torch.device("cpu")) == "gloo"
    with pytest.raises(ParamsError, match="needs the model on a GPU"):
        backend_for("nccl", torch.device("cpu"))
