"""Joint training of every arm on the shared loop, from a real Base run; the control differs from the
augmented arms only in the augmentation."""

import json
import shutil

import numpy as np
import polars as pl
import pytest
import torch
from safetensors.torch import load_file

from ur4rec.runs.evaluation import evaluate
from ur4rec.runs.model import build_model, catalog_of
from ur4rec.runs.spec import RunSpec, load_split
from ur4rec.paths import DatasetPaths
from ur4rec.runs.training import pretrain, pretrain_seed, train, train_arms
from ur4rec.train.checkpoint import load_weights
from ur4rec.train.rerank import RerankTask, predict

from tests.retriever.conftest import tiny_settings

pytestmark = pytest.mark.slow  # real training runs: the full suite, not the inner loop


def base_model(root, s, backbone="prm"):
    spec = RunSpec("fx", backbone, None, 0)
    model, _ = build_model(s.resolve(spec, root), catalog_of(s.resolve(spec, root)), training=False)
    return load_weights(model, spec.paths(root).train / "model.safetensors").eval()


@pytest.mark.parametrize("variant", ["control", "llm", "kar", "ur4rec-no-pretrain"])
def test_every_arm_starts_exactly_as_base_with_the_same_parameter_groups(tiny_project, variant):
    root, s = tiny_project
    spec = RunSpec("fx", "prm", variant, 0)
    torch.manual_seed(0)
    model, groups = build_model(s.resolve(spec, root), catalog_of(s.resolve(spec, root)), training=True)
    valid = load_split(spec.paths(root).dataset, "valid", 10, 60)
    assert np.allclose(predict(model.eval(), valid), predict(base_model(root, s), valid), atol=1e-5)
    joint = s.retriever.joint
    fusion = model.backbone.fusion_parameters()
    retriever = getattr(model.augmenter, "retriever", None)
    expected = [(fusion + ([] if retriever else list(model.augmenter.parameters())), joint.augmenter_lr)]
    if retriever is not None:
        expected.append((list(retriever.parameters()), joint.retriever_lr))
    assert len(groups) == 1 + len(expected)
    for group, (params, lr) in zip(groups[1:], expected):
        assert [id(p) for p in group["params"]] == [id(p) for p in params] and group["lr"] == lr
    assert {id(p) for p in groups[0]["params"]} == {id(p) for p in model.backbone.parameters()} - {id(p) for p in fusion}


@pytest.mark.parametrize("fusion, standardise", [("identity_linear", "false"), ("gated", "true")])
def test_the_control_and_llm_differ_only_in_the_augmentation(tiny_project, tiny_bert, fusion, standardise):
    """Same warm start, fusion shape, parameter groups and loop settings; zero the +LLM vectors and the two
    models are the same function."""
    root, _ = tiny_project
    s = tiny_settings(tiny_bert, f"retriever.joint.fusion={fusion}", f"retriever.joint.standardise={standardise}")
    built = {}
    for variant in ("control", "llm"):
        spec = RunSpec("fx", "prm", variant, 0)
        torch.manual_seed(0)
        built[variant] = build_model(s.resolve(spec, root), catalog_of(s.resolve(spec, root)), training=True)
    (control, c_groups), (llm, l_groups) = built["control"], built["llm"]
    assert [[tuple(p.shape) for p in g["params"]] for g in c_groups] == [[tuple(p.shape) for p in g["params"]] for g in l_groups]
    assert [g.get("lr") for g in c_groups] == [g.get("lr") for g in l_groups]
    assert s.train_config("prm", 0, joint=True) == s.train_config("prm", 0, joint=True)
    for name, tensor in control.state_dict().items():
        assert torch.equal(tensor, llm.state_dict()[name]), name
    llm.augmenter.user_table.zero_()
    valid = load_split(RunSpec("fx", "prm", "llm", 0).paths(root).dataset, "valid", 10, 60)
    with torch.no_grad():  # move the fusion off the identity so the augmentation could matter
        for model in (control, llm):
            torch.manual_seed(1)
            for p in model.backbone.fusion_parameters():
                p.add_(torch.randn_like(p) * 0.1)
    assert np.allclose(predict(control.eval(), valid), predict(llm.eval(), valid), atol=1e-6)


@pytest.mark.parametrize("fusion", ["identity_linear", "gated"])
def test_the_gated_control_stays_base_while_the_backbone_holds_still(tiny_project, tiny_bert, fusion):
    """Real training steps on the control's loss, the backbone's lr at 0: under the gated fusion the control
    scores exactly as Base whatever its fusion learnt; under identity_linear its biases move it off Base."""
    root, _ = tiny_project
    s = tiny_settings(tiny_bert, f"retriever.joint.fusion={fusion}", "retriever.joint.standardise=true")
    spec = RunSpec("fx", "prm", "control", 0)
    torch.manual_seed(0)
    model, groups = build_model(s.resolve(spec, root), catalog_of(s.resolve(spec, root)), training=True)
    groups[0]["lr"] = 0.0  # the backbone's group; the fusion trains at augmenter_lr
    optimizer = torch.optim.AdamW(groups, lr=1e-3, weight_decay=0.01)
    dataset = spec.paths(root).dataset
    task = RerankTask(load_split(dataset, "train", 10, 60), load_split(dataset, "valid", 10, 60), "ndcg@10", 64)
    model.train()
    for batch in task.batches(16, seed=0):
        optimizer.zero_grad()
        task.losses(model, batch)["loss"].backward()
        optimizer.step()
    same = np.allclose(predict(model.eval(), task.valid), predict(base_model(root, s), task.valid), atol=1e-6)
    assert same == (fusion == "gated")


@pytest.mark.parametrize("backbone, variant", [
    ("prm", "ur4rec"), ("prm", "kar"), ("prm", "bert"), ("prm", "control"), ("prm", "ur4rec-no-retr"),
    ("gru4rec", "ur4rec"), ("prm", "ur4rec-random-keys"), ("gru4rec", "llm-shuffled"),
])
def test_train_then_evaluate_an_arm(tiny_project, backbone, variant):
    root, s = tiny_project
    spec = RunSpec("fx", backbone, variant, 0)
    pretrain(s, spec, root)
    train(s, spec, root)
    run = spec.paths(root)
    config = json.loads((run.train / "config.json").read_text())
    assert config["arm"] == variant and config["variant"]["kind"] == s.variant[variant].kind
    assert config["joint"]["fusion"] == s.retriever.joint.fusion
    assert config["joint"]["augmenter_lr"] == s.retriever.joint.augmenter_lr
    weights = load_file(str(run.train / "model.safetensors"))
    assert any(k.startswith("augmenter.") for k in weights) == (s.variant[variant].kind in ("kar", "ur4rec"))
    metrics = evaluate(s, spec, root)
    saved = json.loads((run.eval / "metrics.json").read_text())
    assert saved["ndcg@10"] == pytest.approx(metrics["ndcg@10"]) and 0 <= saved["ndcg@10"] <= 1
    # what the report's drill-down reads: every candidate's rank, agreeing with the metrics ...
    per_sample = pl.read_parquet(run.eval / "per_sample.parquet")
    ranks = pl.read_parquet(run.eval / "ranks.parquet")
    test = pl.read_parquet(run.dataset.prepared / "test.parquet")
    assert ranks["sample_id"].to_list() == per_sample["sample_id"].to_list() == test["sample_id"].to_list()
    matrix = ranks["ranks"].to_numpy()
    assert matrix.dtype == np.int16 and matrix.shape == (test.height, len(test["candidates"][0]))
    target_rank = matrix[np.arange(test.height), test["target_pos"].to_numpy()].astype(float)
    assert np.allclose(per_sample["ndcg@10"].to_numpy(), np.where(target_rank <= 10, 1 / np.log2(target_rank + 1), 0))
    # ... and, for UR4Rec, the retriever's attention over Z for the sampled users' target and top candidate
    attention = run.eval / "attention.parquet"
    assert attention.exists() == s.variant_config(variant).uses_retriever
    if attention.exists():
        frame = pl.read_parquet(attention)
        assert frame.height == test.height  # a tiny test split: every user is in the sample
        tops = {sid: cands[int(np.argmin(r))] for sid, cands, r in zip(test["sample_id"], test["candidates"], matrix)}
        for row in frame.iter_rows(named=True):
            assert row["z_items"][0] == 0 and 0 not in row["z_items"][1:]
            assert row["top"] == tops[row["sample_id"]]
            for layer in row["target_weights"] + row["top_weights"]:
                assert len(layer) == len(row["z_items"]) and sum(layer) == pytest.approx(1, abs=1e-4)


FROM_SCRATCH = "retriever.per_backbone.prm.joint={warm_start: false, epochs: null, patience: null, backbone_lr: null, augmenter_lr: null}"


def test_a_from_scratch_backbone_trains_its_arms_fresh_on_base_schedule(tiny_project, tiny_bert, tmp_path):
    """The shipped regime of the history-blind rerankers: no Base weights, Base's epochs and learning rate."""
    source, _ = tiny_project
    root = tmp_path / "data"
    shutil.copytree(source, root)
    s = tiny_settings(tiny_bert, FROM_SCRATCH, "train.epochs=1", "retriever.pretrain.epochs=1")
    variant = "ur4rec"  # pre-trained against Base, then joint training with a fresh backbone
    spec = RunSpec("fx", "prm", variant, 0)
    pretrain(s, spec, root)
    torch.manual_seed(0)
    model, groups = build_model(s.resolve(spec, root), catalog_of(s.resolve(spec, root)), training=True)
    valid = load_split(spec.paths(root).dataset, "valid", 10, 60)
    assert not np.allclose(predict(model.eval(), valid), predict(base_model(root, s), valid), atol=1e-3)
    assert "lr" not in groups[1]  # the fresh fusion at the loop's rate, which is Base's (below)
    train(s, spec, root)
    run = spec.paths(root)
    config = json.loads((run.train / "config.json").read_text())
    assert config["joint"]["warm_start"] is False and config["train_config"]["epochs"] == s.train.epochs
    assert config["train_config"]["lr"] == s.backbone["prm"].config.lr
    assert 0 <= evaluate(s, spec, root)["ndcg@10"] <= 1
    assert s.resolve(RunSpec("fx", "gru4rec", variant, 0), root).retriever.joint.warm_start  # its own regime


def test_joint_training_moves_the_pretrained_retriever_and_the_backbone(tiny_project):
    root, s = tiny_project
    spec = RunSpec("fx", "prm", "ur4rec", 0)
    pretrain(s, spec, root)
    train(s, spec, root)
    run = spec.paths(root)
    pre = load_file(str(run.pretrain / "model.safetensors"))
    joint = load_file(str(run.train / "model.safetensors"))
    base = load_file(str(run.sibling("base").train / "model.safetensors"))
    assert not torch.equal(joint["augmenter.retriever.proxies"], pre["proxies"])
    assert not torch.equal(joint["backbone.items.ids.weight"], base["items.ids.weight"])


def test_a_rerun_gives_identical_metrics(tiny_project):
    """Same code, params and seed: the same numbers, for every stage of an arm."""
    root, s = tiny_project
    spec = RunSpec("fx", "prm", "ur4rec", 0)
    outputs = []
    for _ in range(2):
        pretrain(s, spec, root)
        train(s, spec, root)
        outputs.append(evaluate(s, spec, root))
    assert outputs[0] == outputs[1]


def test_the_train_aug_stage_keeps_an_arm_whose_inputs_are_unchanged(tiny_project, tiny_bert, tmp_path):
    """One stage trains every arm of a backbone and seed; its output persists, so a new variant trains that
    arm alone, a change of an arm's settings, of its pre-training or of the code retrains it, and unlisted
    arms go. A retrained arm with the same inputs is the same arm, bit for bit."""
    root = shutil.copytree(tiny_project[0], tmp_path / "data")
    (root / "code").mkdir()
    for stage in ("pretrain", "train_aug"):  # the code fingerprints the DVC stages depend on
        (root / "code" / f"{stage}.json").write_text('{"files": {}}')
    arms = DatasetPaths("fx", root).seed_runs("prm", 0).arms

    def run(*overrides):
        s = tiny_settings(tiny_bert, *overrides)
        pretrain_seed(s, "fx", "prm", 0, root)
        return train_arms(s, "fx", "prm", 0, root)

    assert run("variants=[control,ur4rec]") == {"control": "trained", "ur4rec": "trained"}
    weights = load_file(str(arms / "ur4rec" / "train" / "model.safetensors"))
    assert json.loads((arms / "ur4rec" / "train" / "inputs.json").read_text())["settings"]["params"]["variant.ur4rec"]["kind"] == "ur4rec"
    assert run("variants=[control,ur4rec,llm]") == {"control": "kept", "ur4rec": "kept", "llm": "trained"}
    # a new pre-training of ur4rec (another temperature) is a new input of its joint training only
    assert run("variants=[control,ur4rec]", "retriever.pretrain.tau=0.2") == {"control": "kept", "ur4rec": "trained"}
    assert sorted(p.name for p in arms.iterdir()) == ["control", "ur4rec", "variants.json"]
    assert run("variants=[control,ur4rec]", "retriever.joint.epochs=2") == {"control": "trained", "ur4rec": "trained"}

    (root / "code" / "train_aug.json").write_text('{"files": {"ur4rec/train/loop.py": "edited"}}')
    assert run("variants=[control,ur4rec]") == {"control": "trained", "ur4rec": "trained"}
    again = load_file(str(arms / "ur4rec" / "train" / "model.safetensors"))
    assert all(torch.equal(weights[k], again[k]) for k in weights)  # the same inputs give the same arm


def test_standardising_is_an_input_of_pre_training_and_of_every_arm(tiny_project, tiny_bert):
    """The retriever pre-trains on the tables joint training reads, so both retrain when they change; the
    fusion is an input of the arms only."""
    from ur4rec.runs.training import joint_inputs, pretrain_inputs

    root, _ = tiny_project
    plain, z, gated = (tiny_settings(tiny_bert, f"retriever.joint.fusion={f}", f"retriever.joint.standardise={z}")
                       for f, z in (("identity_linear", "false"), ("identity_linear", "true"), ("gated", "false")))
    spec = RunSpec("fx", "prm", "ur4rec", 0)
    assert pretrain_inputs(plain, spec, root) != pretrain_inputs(z, spec, root)
    assert pretrain_inputs(plain, spec, root) == pretrain_inputs(gated, spec, root)
    for variant in ("control", "llm", "ur4rec"):
        spec = RunSpec("fx", "prm", variant, 0)
        assert len({json.dumps(joint_inputs(s, spec, root), sort_keys=True) for s in (plain, z, gated)}) == 3
