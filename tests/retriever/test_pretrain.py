"""Pre-training against a real Base checkpoint, a real embedding store and real prepared samples."""

import json

import pytest
import torch
from safetensors.torch import load_file

from ur4rec.retriever.pretrain import pretrain_dir, run_pretrain



def test_pretraining_writes_weights_and_lowers_the_validation_loss(tiny_project):
    root, params = tiny_project
    params = {**params, "retriever": {**params["retriever"], "pretrain": {**params["retriever"]["pretrain"], "epochs": 4}}}
    summary = run_pretrain("fx", "prm", "ur4rec", params, root=root, progress=False)
    out = pretrain_dir("fx", "prm", "ur4rec", root)
    config = json.loads((out / "config.json").read_text())
    assert config["pretrained"] and config["n_proxies"] == 4 and config["objectives"] == ["cl", "pim"]
    state = load_file(str(out / "retriever.safetensors"))
    assert state["proxies"].shape == (4, 32)
    first, best = summary["history"][0], min(h["valid_loss"] for h in summary["history"])
    assert {"train_cl", "train_pim", "valid_cl", "valid_pim"} <= set(first)
    assert best < summary["history"][0]["valid_loss"] or summary["best_epoch"] == 0
    assert summary["history"][-1]["train_loss"] < first["train_loss"]
    assert summary["train_samples_per_second"] > 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["best_valid_loss"] == pytest.approx(best)


def test_single_objective_ablations_train_only_their_loss(tiny_project):
    root, params = tiny_project
    run_pretrain("fx", "gru4rec", "ur4rec-no-cl", params, root=root, progress=False)
    summary = json.loads((pretrain_dir("fx", "gru4rec", "ur4rec-no-cl", root) / "metrics.json").read_text())
    assert "train_pim" in summary["history"][0] and "train_cl" not in summary["history"][0]
    run_pretrain("fx", "prm", "ur4rec-no-proxy", params, root=root, progress=False)
    state = load_file(str(pretrain_dir("fx", "prm", "ur4rec-no-proxy", root) / "retriever.safetensors"))
    assert state["proxies"].shape == (0, 32)


@pytest.mark.parametrize("variant", ["bert", "llm", "kar", "ur4rec-no-retr", "ur4rec-no-pretrain"])
def test_variants_without_pretraining_write_only_a_marker(tiny_project, variant):
    root, params = tiny_project
    run_pretrain("fx", "prm", variant, params, root=root, progress=False)
    out = pretrain_dir("fx", "prm", variant, root)
    assert sorted(p.name for p in out.iterdir()) == ["config.json"]
    assert json.loads((out / "config.json").read_text())["pretrained"] is False
