"""Assembly of an augmented model for joint training (Algorithm 1 lines 19–23, eq. 9); the loop trains it.

The model is `AugmentedRecommender(backbone(aug_dim=A), augmenter)`, trained by `ur4rec.train.loop` on the
backbone's loss, so retriever (or KAR adaptor) and backbone learn together.

Warm start (`retriever.joint.warm_start`, for every arm of a backbone alike, the control included): the
backbone starts from its Base checkpoint and the fusion (`Backbone.fuse_as_identity`) returns h_i whatever the
aug, so every arm starts exactly as Base. The pre-trained retriever was aligned to those very h_i, which is
why the paper pre-trains on the trained Base. The backbone then fine-tunes at the loop's lr (`backbone_lr`),
the fresh parts and the retriever at their own (`param_groups`). A backbone may train its arms from scratch
instead (`retriever.per_backbone.<name>.joint`, the shipped regime of the history-blind rerankers): the
backbone then starts fresh on Base's schedule, its control is Base retrained with a zeroed augmentation, and
UR4Rec's retriever still starts from its pre-training against the trained Base.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from ur4rec.models.base import Backbone
from ur4rec.train.checkpoint import read_checkpoint
from ur4rec.retriever.augment import AugmentedRecommender


def warm_start(backbone: Backbone, base_checkpoint: Path) -> list[str]:
    """Copy every Base tensor whose name and shape match; make the aug fusion start as the identity on h_i.

    Returns the names of the backbone tensors that were not copied (the fusion layer, at least).
    """
    if not base_checkpoint.exists():
        raise FileNotFoundError(f"{base_checkpoint}: Base checkpoint missing (train the Base run of this seed first)")
    base = read_checkpoint(base_checkpoint)
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
