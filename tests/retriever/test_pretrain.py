"""Pre-training on the shared loop, against a real Base checkpoint, a real embedding store and real lists."""

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

from tests.retriever.conftest import tiny_settings
from ur4rec.runs.spec import RunSpec
from ur4rec.paths import DatasetPaths
from ur4rec.runs.training import pretrain, pretrain_seed, pretrain_task

pytestmark = pytest.mark.slow  # real training runs: the full suite, not the inner loop


def test_pretraining_selects_the_lowest_validation_loss_and_writes_weights(tiny_project, tiny_bert):
    root, _ = tiny_project
    s = tiny_settings(tiny_bert, "retriever.pretrain.epochs=4", "retriever.pretrain.patience=4")
    summary = pretrain(s, RunSpec("fx", "prm", "ur4rec", 0), root)
    out = RunSpec("fx", "prm", "ur4rec", 0).paths(root).pretrain
    config = json.loads((out / "config.json").read_text())
    assert config["pretrained"] and config["n_proxies"] == 4 and config["variant"]["objectives"] == ["cl", "pim"]
    state = load_file(str(out / "model.safetensors"))
    assert state["proxies"].shape == (4, 32)
    history = summary["history"]
    assert {"train_cl", "train_pim", "valid_cl", "valid_pim", "valid_hit@1", "valid_pim_acc"} <= set(history[0])
    # the kept epoch is the one with the lowest validation loss, whatever the curve's shape
    losses = [h["valid_loss"] for h in history]
    assert summary["best_epoch"] == losses.index(min(losses)) and summary["best_valid"] == pytest.approx(min(losses))
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert json.loads((out / "fit.json").read_text())["best_epoch"] == summary["best_epoch"]


def test_pretraining_is_repeatable(tiny_project, tiny_bert):
    """The retriever's random parts (proxies, cross-attention) are drawn after the run's seed is set."""
    root, s = tiny_project
    spec = RunSpec("fx", "prm", "ur4rec", 0)
    first = (pretrain(s, spec, root), load_file(str(spec.paths(root).pretrain / "model.safetensors")))
    second = (pretrain(s, spec, root), load_file(str(spec.paths(root).pretrain / "model.safetensors")))
    assert [h["valid_loss"] for h in first[0]["history"]] == [h["valid_loss"] for h in second[0]["history"]]
    assert all(torch.equal(first[1][k], second[1][k]) for k in first[1])


def test_single_objective_ablations_train_only_their_loss(tiny_project):
    root, s = tiny_project
    summary = pretrain(s, RunSpec("fx", "gru4rec", "ur4rec-no-cl", 0), root)
    assert "train_pim" in summary["history"][0] and "train_cl" not in summary["history"][0]
    pretrain(s, RunSpec("fx", "prm", "ur4rec-no-proxy", 0), root)
    state = load_file(str(RunSpec("fx", "prm", "ur4rec-no-proxy", 0).paths(root).pretrain / "model.safetensors"))
    assert state["proxies"].shape == (0, 32)


@pytest.mark.parametrize("variant", ["control", "bert", "llm", "kar", "ur4rec-no-retr", "ur4rec-no-pretrain"])
def test_variants_without_pretraining_write_only_a_marker(tiny_project, variant):
    root, s = tiny_project
    pretrain(s, RunSpec("fx", "prm", variant, 0), root)
    out = RunSpec("fx", "prm", variant, 0).paths(root).pretrain
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "inputs.json"]
    assert json.loads((out / "config.json").read_text())["pretrained"] is False


def test_in_batch_negatives_never_use_the_users_own_items(tiny_project, tiny_bert):
    root, _ = tiny_project
    s = tiny_settings(tiny_bert, "retriever.pretrain.in_batch_negatives=true",
                      "retriever.pretrain.negative_sampling=popularity")
    task, retriever = pretrain_task(s, RunSpec("fx", "prm", "ur4rec", 0), root)
    batch = next(task.batches(16, seed=3))
    allowed = task._in_batch_mask(batch.batch.user_ids, batch.batch.candidates.gather(
        1, batch.batch.target_pos.unsqueeze(1)).squeeze(1))
    assert not allowed.diagonal().any()
    users, targets = batch.batch.user_ids, batch.batch.candidates.gather(1, batch.batch.target_pos.unsqueeze(1)).squeeze(1)
    for b in range(len(users)):
        for j in range(len(users)):
            if allowed[b, j]:
                assert not task.data.sampler.is_seen(users[b:b + 1].numpy(), targets[j:j + 1].numpy())[0]
    losses = task.losses(retriever, batch)
    assert torch.isfinite(losses["loss"]) and losses["cl"] > 0


def test_the_pretrain_stage_keeps_a_variant_whose_inputs_are_unchanged(tiny_project, tiny_bert, tmp_path):
    """One stage pre-trains every variant of a backbone and seed; its output persists, so adding a variant
    pre-trains that one alone, any change of a variant's inputs redoes it, and unlisted variants go."""
    root = shutil.copytree(tiny_project[0], tmp_path / "data")
    code = root / "code" / "pretrain.json"  # the code fingerprint the DVC stage depends on
    code.parent.mkdir()
    code.write_text('{"files": {}}')
    pretrained = DatasetPaths("fx", root).seed_runs("prm", 0).pretrain

    s = tiny_settings(tiny_bert, "variants=[control,ur4rec]")
    assert pretrain_seed(s, "fx", "prm", 0, root) == {"control": "marker", "ur4rec": "pretrained"}
    weights = load_file(str(pretrained / "ur4rec" / "model.safetensors"))
    grown = tiny_settings(tiny_bert, "variants=[control,ur4rec,ur4rec-no-cl]")
    assert pretrain_seed(grown, "fx", "prm", 0, root) == {"control": "kept", "ur4rec": "kept", "ur4rec-no-cl": "pretrained"}
    changed = tiny_settings(tiny_bert, "variants=[control,ur4rec]", "retriever.pretrain.tau=0.2")
    assert pretrain_seed(changed, "fx", "prm", 0, root) == {"control": "kept", "ur4rec": "pretrained"}
    assert sorted(p.name for p in pretrained.iterdir()) == ["control", "ur4rec", "variants.json"]

    code.write_text('{"files": {"ur4rec/retriever/model.py": "edited"}}')
    assert pretrain_seed(s, "fx", "prm", 0, root) == {"control": "marker", "ur4rec": "pretrained"}
    again = load_file(str(pretrained / "ur4rec" / "model.safetensors"))
    assert all(torch.equal(weights[k], again[k]) for k in weights)  # the same inputs give the same retriever
