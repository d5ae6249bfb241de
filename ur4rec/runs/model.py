"""The model of a run: a backbone alone (Base) or a backbone fed by a variant's augmenter.

One function builds both, for training (warm start, pre-trained retriever) and for evaluation (the same
architecture, weights from the checkpoint), so the two can never disagree on what a run is.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from ur4rec import models
from ur4rec.encode.store import EmbeddingStore
from ur4rec.models.catalog import ItemCatalog
from ur4rec.paths import DATA_ROOT, RunPaths
from ur4rec.retriever.augment import AugmentedRecommender
from ur4rec.retriever.build import build_augmenter
from ur4rec.retriever.joint import joint_history_len, param_groups, warm_start
from ur4rec.runs.settings import Settings
from ur4rec.runs.spec import RunSpec, count_users, users_of_split
from ur4rec.train.catalog import read_catalog
from ur4rec.train.loop import WEIGHTS_FILE

PRETRAINED_FILE = WEIGHTS_FILE  # the pretrain folder holds the retriever's best weights under the loop's name


def catalog_of(s: Settings, spec: RunSpec, root: Path = DATA_ROOT) -> ItemCatalog:
    model = models.lookup(s.backbone_spec(spec.backbone).model)
    return read_catalog(spec.paths(root).dataset.prepared / "items.parquet", with_texts=model.needs_item_texts)


def history_len(s: Settings, spec: RunSpec) -> int:
    """History read from the data: the backbone's own, or more when the variant's Z needs more items."""
    own = s.backbone_spec(spec.backbone).config.history_len
    if spec.variant is None:
        return own
    variant = s.variant_config(spec.variant)
    if variant.kind in ("pooled", "ur4rec"):
        return joint_history_len(own, s.per_backbone(spec.backbone).z_history)
    return own


def build_model(s: Settings, spec: RunSpec, catalog: ItemCatalog, training: bool,
                root: Path = DATA_ROOT) -> tuple[nn.Module, list[dict] | None]:
    """The run's model and its AdamW parameter groups (None: one group at the loop's lr)."""
    bspec = s.backbone_spec(spec.backbone)
    if spec.variant is None:
        return models.build(bspec.model, bspec.config, catalog), None
    paths = spec.paths(root)
    variant = s.variant_config(spec.variant)
    pretrained = load_pretrained(paths) if training and variant.needs_pretraining else None
    augmenter = build_augmenter(variant, s.retriever, s.per_backbone(spec.backbone), EmbeddingStore(paths.dataset.emb),
                                count_users(paths.dataset), catalog.n_items, bspec.config.dim, pretrained,
                                train_users=users_of_split(paths.dataset, "train"))
    backbone = models.build(bspec.model, bspec.config, catalog, aug_dim=augmenter.out_dim)
    backbone.use_fusion(s.retriever.joint.fusion)  # before the warm start, which sets it to the identity
    if training and s.retriever.joint.warm_start:
        warm_start(backbone, paths.sibling(spec.base().arm).train / WEIGHTS_FILE)
    model = AugmentedRecommender(backbone, augmenter)
    joint = s.retriever.joint
    return model, param_groups(model, joint.augmenter_lr, joint.retriever_lr)


def load_pretrained(paths: RunPaths) -> dict[str, torch.Tensor]:
    path = paths.pretrain / PRETRAINED_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path}: no pre-trained retriever; run the pretrain stage of {paths.arm} first")
    return load_file(str(path))
