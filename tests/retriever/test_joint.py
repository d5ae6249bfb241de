"""Joint training of every augmentation kind on the shared loop, from a real Base run, then evaluation."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from ur4rec.retriever.config import retriever_config
from ur4rec.retriever.joint import evaluate_variant, train_variant, variant_factory
from ur4rec.retriever.pretrain import run_pretrain
from ur4rec.train.loop import predict
from ur4rec.train.run import load_trained, run_context, trained_context



@pytest.mark.parametrize("variant", ["llm", "kar", "ur4rec-no-pretrain"])
def test_warm_started_variant_starts_exactly_as_base(tiny_project, variant):
    root, params = tiny_project
    base_ctx, _ = trained_context("fx", "prm", "base", params, root)
    base = load_trained(base_ctx)
    ctx = run_context("fx", "prm", variant, params, root=root)
    model, groups = variant_factory(variant, training=True)(ctx)
    valid = ctx.load_split("valid", 10)
    assert np.allclose(predict(model, valid), predict(base, valid), atol=1e-5)
    has_weights = any(True for _ in model.augmenter.parameters())
    assert has_weights == (variant != "llm")
    # fusion + fresh augmenter weights, and the retriever, get their own groups apart from the backbone
    joint = retriever_config(ctx.params).joint
    fusion = [*model.backbone.aug_proj.parameters(), *model.backbone.aug_scale.parameters()]
    retriever = getattr(model.augmenter, "retriever", None)
    expected = [(fusion + ([] if retriever else list(model.augmenter.parameters())), joint.augmenter_lr)]
    if retriever is not None:
        expected.append((list(retriever.parameters()), joint.retriever_lr))
    assert len(groups) == 1 + len(expected)
    for group, (params, lr) in zip(groups[1:], expected):
        assert [id(p) for p in group["params"]] == [id(p) for p in params] and group["lr"] == lr
    backbone_ids = {id(p) for p in groups[0]["params"]}
    assert backbone_ids == {id(p) for p in model.backbone.parameters()} - {id(p) for p in fusion}


@pytest.mark.parametrize("backbone, variant", [
    ("prm", "ur4rec"), ("prm", "kar"), ("prm", "bert"), ("prm", "ur4rec-no-retr"), ("gru4rec", "ur4rec"),
])
def test_train_then_evaluate_a_variant(tiny_project, backbone, variant):
    root, params = tiny_project
    run_pretrain("fx", backbone, variant, params, root=root, progress=False)
    train_variant("fx", backbone, variant, params, root=root)
    run = root / "fx" / "runs" / backbone / variant
    config = json.loads((run / "train" / "config.json").read_text())
    assert config["variant"] == variant
    weights = load_file(str(run / "train" / "model.safetensors"))
    assert any(k.startswith("augmenter.") for k in weights) == (variant not in ("bert", "ur4rec-no-retr"))
    metrics = evaluate_variant("fx", backbone, variant, params, root=root)
    saved = json.loads((run / "eval" / "metrics.json").read_text())
    assert saved["ndcg@10"] == pytest.approx(metrics["ndcg@10"]) and 0 <= saved["ndcg@10"] <= 1
    assert (run / "eval" / "per_sample.parquet").exists()


def test_joint_training_moves_the_pretrained_retriever_and_the_backbone(tiny_project):
    root, params = tiny_project
    run_pretrain("fx", "prm", "ur4rec", params, root=root, progress=False)
    train_variant("fx", "prm", "ur4rec", params, root=root)
    run = root / "fx" / "runs" / "prm"
    pre = load_file(str(run / "ur4rec" / "pretrain" / "retriever.safetensors"))
    joint = load_file(str(run / "ur4rec" / "train" / "model.safetensors"))
    base = load_file(str(run / "base" / "train" / "model.safetensors"))
    assert not torch.equal(joint["augmenter.retriever.proxies"], pre["proxies"])
    assert not torch.equal(joint["backbone.items.ids.weight"], base["items.ids.weight"])
