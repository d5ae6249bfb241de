"""Joint training and evaluation of an augmented variant (Algorithm 1 lines 19–23, eq. 9).

The model is `AugmentedRecommender(backbone(aug_dim=A), augmenter)`, trained by the shared loop of
`ur4rec.train` on the backbone's loss, so retriever (or KAR adaptor) and backbone learn together. Everything
else — data, early stopping on validation, DVCLive, resume, checkpoints, evaluation — is the Base run's.

Warm start (`retriever.joint.warm_start`, default on, for every augmented variant alike): the backbone starts
from its Base checkpoint and the fusion (`Backbone.fuse_as_identity`) returns h_i whatever the aug, so the
augmented model starts exactly as Base and learns how much of the augmentation to use. The pre-trained
retriever was aligned to those very h_i, which is why the paper pre-trains on the trained Base. The backbone then
fine-tunes at the loop's lr (`backbone_lr`), the fresh parts and the retriever at their own (`param_groups`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from safetensors.torch import load_file
from torch import nn

from ur4rec.models.base import Backbone
from ur4rec.retriever.augment import AugmentedRecommender
from ur4rec.retriever.build import build_augmenter, count_users
from ur4rec.retriever.config import retriever_config
from ur4rec.retriever.pretrain import load_pretrained_state
from ur4rec.retriever.variants import variant_config


def variant_factory(variant: str, training: bool):
    """A `ModelFactory` for `ur4rec.train.run`: builds the variant; `training` adds warm start and pre-training."""

    def factory(ctx) -> tuple[nn.Module, list[dict]]:
        from ur4rec.encode.store import EmbeddingStore

        vcfg = variant_config(ctx.params, variant)
        rcfg = retriever_config(ctx.params)
        pretrained = None
        if training and vcfg.needs_pretraining:
            pretrained = load_pretrained_state(ctx.paths.run(ctx.backbone, variant) / "pretrain")
        augmenter = build_augmenter(
            vcfg, rcfg, ctx.backbone, EmbeddingStore(ctx.paths.emb), count_users(ctx.paths.prepared),
            ctx.catalog.n_items, ctx.backbone_cfg.dim, pretrained,
        )
        backbone = ctx.build_backbone(aug_dim=augmenter.out_dim)
        if training and rcfg.joint.warm_start:
            warm_start(backbone, ctx.paths.run(ctx.backbone, "base") / "train" / "model.safetensors")
        model = AugmentedRecommender(backbone, augmenter)
        return model, param_groups(model, rcfg.joint.augmenter_lr, rcfg.joint.retriever_lr)

    return factory


def warm_start(backbone: Backbone, base_checkpoint: Path) -> list[str]:
    """Copy every Base tensor whose name and shape match; make the aug fusion start as the identity on h_i.

    Returns the names of the backbone tensors that were not copied (the fusion layer, at least).
    """
    if not base_checkpoint.exists():
        raise FileNotFoundError(f"{base_checkpoint}: Base checkpoint missing (train the Base variant first)")
    base = load_file(str(base_checkpoint))
    state = backbone.state_dict()
    fresh = [k for k, v in state.items() if k not in base or base[k].shape != v.shape]
    state.update({k: base[k] for k in state if k not in fresh})
    backbone.load_state_dict(state)
    backbone.fuse_as_identity()
    return fresh


def param_groups(model: AugmentedRecommender, augmenter_lr: float | None, retriever_lr: float | None) -> list[dict]:
    """AdamW groups: the warm-started backbone at the loop's lr; the fresh parts (the aug fusion, KAR's adaptor)
    at `augmenter_lr`; the UR4Rec retriever, BERT-initialised and pre-trained, at `retriever_lr` (the rates
    that fine-tune a BERT layer are an order below those that train a fresh MLP). None: the loop's lr."""
    retriever = getattr(model.augmenter, "retriever", None)
    slow = _trainable(retriever.parameters()) if retriever is not None else []
    slow_ids = {id(p) for p in slow}
    fresh = _trainable([*model.backbone.fusion_parameters(), *model.augmenter.parameters()], skip=slow_ids)
    groups = [{"params": _trainable(model.backbone.parameters(), skip={id(p) for p in fresh})}]
    groups += [{"params": params, **({"lr": lr} if lr is not None else {})}
               for params, lr in ((fresh, augmenter_lr), (slow, retriever_lr)) if params]
    return groups


def _trainable(params, skip: set[int] = frozenset()) -> list[nn.Parameter]:
    return [p for p in params if p.requires_grad and id(p) not in skip]


def history_len(params: Mapping[str, Any], backbone: str, backbone_history: int) -> int:
    """History read from the data: the backbone's own, or more when Z needs more items."""
    return max(backbone_history, retriever_config(params).for_backbone(backbone).z_history)


def train_variant(dataset: str, backbone: str, variant: str, params: Mapping[str, Any], root: Path | None = None):
    """The `train_aug` stage: jointly train `variant` on `backbone`; writes `.../<variant>/train/`."""
    from ur4rec import models
    from ur4rec.config import get_path, merged
    from ur4rec.train.run import run_training

    variant_config(params, variant)  # fail fast on an unknown variant
    backbone_history = models.make_config(backbone, get_path(params, f"backbone.{backbone}")).history_len
    params = merged(params, {"train": retriever_config(params).joint.train_overrides()})
    return run_training(dataset, backbone, variant, params, factory=variant_factory(variant, training=True),
                        root=root, history_len=history_len(params, backbone, backbone_history))


def evaluate_variant(dataset: str, backbone: str, variant: str, params: Mapping[str, Any], root: Path | None = None):
    """Test metrics of a jointly trained variant; writes `.../<variant>/eval/`."""
    from ur4rec.eval.run import evaluate_run

    return evaluate_run(dataset, backbone, variant, params, factory=variant_factory(variant, training=False), root=root)
