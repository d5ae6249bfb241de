"""The one loop: selection and early stopping on validation only, determinism, resume, checkpoints."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import dataset_entry, settings
from tests.models.conftest import TINY
from ur4rec.eval.metrics import score_metric
from ur4rec.models import build
from ur4rec.runs.spec import RunSpec
from ur4rec.runs.training import train
from ur4rec.train import loop
from ur4rec.train.batch import RerankData
from ur4rec.train.catalog import read_catalog
from ur4rec.train.checkpoint import load_weights
from ur4rec.train.config import TrainConfig
from ur4rec.train.loop import fit
from ur4rec.train.rerank import RerankTask, labels_of, predict

pytestmark = pytest.mark.slow  # real training runs: the full suite, not the inner loop

CFG = TrainConfig(epochs=3, patience=2, batch_size=64, lr=3e-3, progress=False, threads=1)


def setup(prepared_dir: Path, name: str = "dlcm"):
    prepared = prepared_dir / "clusters" / "prepared"
    catalog = read_catalog(prepared / "items.parquet")
    torch.manual_seed(0)
    model = build(name, {**TINY[name], "user_history": True}, catalog)
    train_data, valid = (RerankData.from_parquet(prepared / f"{s}.parquet", model.history_len, catalog.n_items)
                         for s in ("train", "valid"))
    return model, RerankTask(train_data, valid), valid


def weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_best_epoch_is_selected_on_validation_and_saved(prepared_dir, tmp_path):
    model, task, valid = setup(prepared_dir)
    result = fit(model, task, replace(CFG, epochs=4, patience=4), tmp_path)
    curve = [h["valid_ndcg@10"] for h in result.history]
    assert result.best_epoch == int(np.argmax(curve))
    # the returned model and the checkpoint are the best epoch's, not the last one's
    assert score_metric("ndcg@10", predict(model, valid), labels_of(valid)) == pytest.approx(max(curve))
    reloaded, _, _ = setup(prepared_dir)
    load_weights(reloaded, tmp_path / "model.safetensors")
    assert np.allclose(predict(reloaded, valid), predict(model, valid))
    assert json.loads((tmp_path / "fit.json").read_text())["best_epoch"] == result.best_epoch


def test_stops_after_patience_epochs_without_validation_gain(prepared_dir, tmp_path):
    """With lr 0 the weights never change, so validation never improves after the first epoch."""
    model, task, _ = setup(prepared_dir)
    result = fit(model, task, replace(CFG, lr=1e-30, epochs=10, patience=2), tmp_path)
    assert result.epochs_run == 3 and result.stopped_early and result.best_epoch == 0


def test_a_lower_is_better_task_keeps_its_minimum(prepared_dir, tmp_path):
    """Selection follows the task's direction: for a loss-like metric the lowest validation value wins."""

    class LossTask:
        select_mode = "min"

        def __init__(self, task):
            self.task, self.n_train = task, task.n_train
            self.n_batches, self.batches, self.losses, self.identity = task.n_batches, task.batches, task.losses, task.identity

        def validate(self, model):
            with torch.no_grad():
                return {"loss": float(np.mean([self.losses(model, b)["loss"].item() for b in self.task.valid.batches(64)]))}

    model, task, valid = setup(prepared_dir)
    result = fit(model, LossTask(task), replace(CFG, epochs=3, patience=3, select_metric="loss"), tmp_path)
    curve = [h["valid_loss"] for h in result.history]
    assert result.best_epoch == int(np.argmin(curve)) and result.best_valid == pytest.approx(min(curve))


def test_validate_start_keeps_the_starting_weights_when_no_epoch_beats_them(prepared_dir, tmp_path, monkeypatch):
    """A warm start that only gets worse ends where it began (best_epoch -1), not at its least bad epoch."""

    def damaging_epoch(model, optimizer, task, cfg, epoch, params, here):  # stands in for an epoch that overfits
        with torch.no_grad():
            for p in params:
                p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(epoch)) * 2.0)
        return {"loss": 0.0}

    model, task, valid = setup(prepared_dir)
    fit(model, task, CFG, tmp_path / "warm")
    start = weights(model)
    start_score = score_metric("ndcg@10", predict(model, valid), labels_of(valid))
    monkeypatch.setattr(loop, "train_epoch", damaging_epoch)
    result = fit(model, task, replace(CFG, epochs=2, patience=1, validate_start=True), tmp_path / "a")
    assert result.start_valid == pytest.approx(start_score)
    assert all(h["valid_ndcg@10"] < start_score for h in result.history)
    assert result.best_epoch == -1 and result.best_valid == pytest.approx(start_score)
    assert result.epochs_run == 1  # patience counts from the start
    assert same(weights(model), start)
    # without it, the least bad epoch is kept
    result = fit(model, task, replace(CFG, epochs=2, patience=1), tmp_path / "b")
    assert result.best_epoch >= 0 and result.start_valid is None
    assert result.best_valid == max(h["valid_ndcg@10"] for h in result.history) < start_score


def test_same_seed_same_model(prepared_dir, tmp_path):
    runs = []
    for i in range(2):
        model, task, _ = setup(prepared_dir)
        fit(model, task, replace(CFG, epochs=2), tmp_path / str(i))
        runs.append(weights(model))
    assert same(*runs)
    model, task, _ = setup(prepared_dir)
    fit(model, task, replace(CFG, epochs=2, seed=7), tmp_path / "other")
    assert not same(runs[0], weights(model))


def test_interrupted_training_resumes_to_the_same_model(prepared_dir, tmp_path, monkeypatch):
    model, task, _ = setup(prepared_dir)
    fit(model, task, CFG, tmp_path / "straight")
    expected = weights(model)

    calls = {"n": 0}
    real_validate = RerankTask.validate

    def crash_in_second_epoch(self, model):  # an interruption (kill, time limit) mid-training
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real_validate(self, model)

    state = tmp_path / "state"
    model, task, _ = setup(prepared_dir)
    monkeypatch.setattr(RerankTask, "validate", crash_in_second_epoch)
    with pytest.raises(KeyboardInterrupt):
        fit(model, task, CFG, tmp_path / "resumed", state_dir=state)
    assert json.loads((state / "state.json").read_text())["epoch"] == 1
    monkeypatch.setattr(RerankTask, "validate", real_validate)
    model, task, _ = setup(prepared_dir)  # a fresh process: new model, state from disk
    result = fit(model, task, CFG, tmp_path / "resumed", state_dir=state)
    assert result.resumed_from_epoch == 1 and result.epochs_run == CFG.epochs
    assert same(weights(model), expected)
    assert not state.exists()


def test_state_of_another_configuration_is_not_reused(prepared_dir, tmp_path, monkeypatch):
    model, task, _ = setup(prepared_dir)
    state = tmp_path / "state"
    monkeypatch.setattr(RerankTask, "validate", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        fit(model, task, CFG, tmp_path / "a", state_dir=state)
    monkeypatch.undo()
    model, task, _ = setup(prepared_dir)
    result = fit(model, task, replace(CFG, lr=1e-3), tmp_path / "b", state_dir=state)
    assert result.resumed_from_epoch == 0


def run_settings():
    return settings(dataset_entry("clusters"), "datasets=[clusters]", "backbones=[dlcm]",
                    "train.epochs=3", "train.patience=2", "train.batch_size=64", "train.progress=false",
                    "backbone.dlcm.dim=16", "backbone.dlcm.lr=3e-3", "backbone.dlcm.user_history=true")


def test_training_never_reads_the_test_split(prepared_dir, tmp_path):
    """Selection is on validation: a corrupted test file changes nothing, and training succeeds without it."""
    root = tmp_path / "data"
    shutil.copytree(prepared_dir / "clusters", root / "clusters")
    s, spec = run_settings(), RunSpec("clusters", "dlcm", None, 0)
    first = train(s, spec, root)
    (root / "clusters" / "prepared" / "test.parquet").write_bytes(b"not parquet at all")
    second = train(s, spec, root)
    (root / "clusters" / "prepared" / "test.parquet").unlink()
    third = train(s, spec, root)
    strip = [[{k: v for k, v in h.items() if "seconds" not in k} for h in r.history] for r in (first, second, third)]
    assert strip[0] == strip[1] == strip[2]


def test_run_writes_checkpoint_config_and_dvclive_plots(prepared_dir, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(prepared_dir / "clusters", root / "clusters")
    result = train(run_settings(), RunSpec("clusters", "dlcm", None, 4), root)
    run = RunSpec("clusters", "dlcm", None, 4).paths(root)
    assert run.train == root / "clusters" / "runs" / "dlcm" / "seed4" / "base" / "train"
    assert sorted(p.name for p in run.train.iterdir()) == ["config.json", "fit.json", "model.safetensors"]
    config = json.loads((run.train / "config.json").read_text())
    assert config["backbone_config"]["lr"] == 3e-3 and config["history_len"] == 10 and config["seed"] == 4
    assert config["train_config"]["seed"] == 4 and config["arm"] == "base" and config["variant"] is None
    curve = (run.live / "plots" / "metrics" / "valid" / "ndcg@10.tsv").read_text().splitlines()
    assert len(curve) == 1 + result.epochs_run
    assert not run.resume.exists()
