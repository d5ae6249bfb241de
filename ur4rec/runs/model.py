"""The model of a run: a backbone alone (Base) or a backbone fed by a variant's augmenter.

One function builds both, for training (warm start, pre-trained retriever) and for evaluation (the same
architecture, weights from the checkpoint), so the two can never disagree on what a run is.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from ur4rec import models
from ur4rec.encode.store import EmbeddingStore
from ur4rec.eval.reference import item_counts
from ur4rec.models.catalog import ItemCatalog
from ur4rec.paths import RunPaths
from ur4rec.retriever.augment import AugmentedRecommender
from ur4rec.retriever.build import build_augmenter
from ur4rec.retriever.joint import param_groups, warm_start
from ur4rec.runs.settings import Run
from ur4rec.runs.spec import count_users, training_interactions, users_of_split
from ur4rec.train.catalog import read_catalog
from ur4rec.train.checkpoint import read_checkpoint
from ur4rec.train.loop import WEIGHTS_FILE

PRETRAINED_FILE = WEIGHTS_FILE  # the pretrain folder holds the retriever's best weights under the loop's name


def catalog_of(run: Run) -> ItemCatalog:
    """The items a run's backbone is built over, with training users' counts when its item bias reads them."""
    dataset = run.paths.dataset
    catalog = read_catalog(dataset.prepared / "items.parquet", with_texts=models.entry(run.backbone.model).needs_item_texts)
    if run.backbone.config.item_bias != "popularity":
        return catalog
    _, items = training_interactions(dataset)
    return dataclasses.replace(catalog, item_counts=torch.from_numpy(item_counts(items, catalog.n_items)))


def build_model(run: Run, catalog: ItemCatalog, training: bool) -> tuple[nn.Module, list[dict] | None]:
    """The run's model and its AdamW parameter groups (None: one group at the loop's lr)."""
    bspec = run.backbone
    if run.variant is None:
        return models.build(bspec.model, bspec.config, catalog), None
    pretrained = load_pretrained(run.paths) if training and run.variant.needs_pretraining else None
    augmenter = build_augmenter(run.variant, run.retriever, run.retriever_settings(), EmbeddingStore(run.paths.dataset.emb),
                                count_users(run.paths.dataset), catalog.n_items, bspec.config.dim, pretrained,
                                train_users=users_of_split(run.paths.dataset, "train"))
    backbone = models.build(bspec.model, bspec.config, catalog, aug_dim=augmenter.out_dim)
    joint = run.retriever.joint
    backbone.use_fusion(joint.fusion)  # before the warm start, which sets it to the identity
    if training and joint.warm_start:
        warm_start(backbone, run.base_paths().train / WEIGHTS_FILE)
    model = AugmentedRecommender(backbone, augmenter)
    return model, param_groups(model, joint.augmenter_lr, joint.retriever_lr)


def load_pretrained(paths: RunPaths) -> dict[str, torch.Tensor]:
    path = paths.pretrain / PRETRAINED_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path}: no pre-trained retriever; run the pretrain stage of {paths.arm} first")
    return read_checkpoint(path)
