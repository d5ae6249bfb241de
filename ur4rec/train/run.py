"""One (dataset, backbone, variant) training as a whole, given a model factory.

The Base stage uses the default factory (the plain backbone); an augmented variant passes its own factory
that wraps `ctx.build_backbone(aug_dim=...)`, and reuses everything else: data loading, the loop, DVCLive,
resume, checkpoints, and `load_trained` for evaluation.

Layout under `data/<ds>/runs/<backbone>/<variant>/`:
    train/      model.safetensors (best by validation), config.json, fit.json   (written whole, atomically)
    dvclive/    per-epoch metrics and plots (DVCLive)
    .train.resume/   epoch-level resume state, only while a training is unfinished
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from torch import nn

from ur4rec import models
from ur4rec.config import get_path, section
from ur4rec.io import atomic_dir, write_json
from ur4rec.models.base import Backbone, BackboneConfig
from ur4rec.paths import DATA_ROOT, DatasetPaths
from ur4rec.train.batch import RerankData
from ur4rec.models.catalog import ItemCatalog
from ur4rec.train.catalog import read_catalog
from ur4rec.train.checkpoint import load_weights
from ur4rec.train.config import TrainConfig
from ur4rec.train.loop import FitResult, fit

CONFIG_FILE = "config.json"


@dataclass
class RunContext:
    """Everything a model factory may need, and where the run's files go."""

    dataset: str
    backbone: str
    variant: str
    params: Mapping[str, Any]
    backbone_cfg: BackboneConfig
    train_cfg: TrainConfig
    catalog: ItemCatalog
    paths: DatasetPaths

    @property
    def run_dir(self) -> Path:
        return self.paths.run(self.backbone, self.variant)

    @property
    def train_dir(self) -> Path:
        return self.run_dir / "train"

    @property
    def live_dir(self) -> Path:
        return self.run_dir / "dvclive"

    @property
    def state_dir(self) -> Path:
        return self.run_dir / ".train.resume"

    @property
    def history_len(self) -> int:
        return self.backbone_cfg.history_len

    def build_backbone(self, aug_dim: int = 0) -> Backbone:
        return models.build(self.backbone, self.backbone_cfg, self.catalog, aug_dim)

    def load_split(self, split: str, history_len: int | None = None) -> RerankData:
        path = self.paths.prepared / f"{split}.parquet"
        return RerankData.from_parquet(path, history_len or self.history_len, self.catalog.n_items)


Built = nn.Module | tuple[nn.Module, list[dict]]
ModelFactory = Callable[[RunContext], Built]


def base_factory(ctx: RunContext) -> Backbone:
    """The Base variant: the backbone alone."""
    return ctx.build_backbone()


def train_config(params: Mapping[str, Any], backbone_cfg: BackboneConfig) -> TrainConfig:
    """`train:` as a TrainConfig, with the backbone's lr unless `train.lr` overrides it."""
    cfg = section(TrainConfig, get_path(params, "train", {}), where="train")
    return cfg if cfg.lr is not None else dataclasses.replace(cfg, lr=backbone_cfg.lr)


def run_context(dataset: str, backbone: str, variant: str, params: Mapping[str, Any],
                backbone_block: Mapping[str, Any] | None = None, root: Path | None = None) -> RunContext:
    """Read the catalogue and configs; `backbone_block` (e.g. from a saved config.json) wins over params."""
    models.lookup(backbone)  # an unknown name is an error listing the known ones, before any params lookup
    paths = DatasetPaths(dataset, root if root is not None else DATA_ROOT)
    block = backbone_block if backbone_block is not None else get_path(params, f"backbone.{backbone}")
    backbone_cfg = models.make_config(backbone, block)
    catalog = read_catalog(paths.prepared / "items.parquet")
    return RunContext(dataset, backbone, variant, params, backbone_cfg, train_config(params, backbone_cfg), catalog, paths)


def unpack(built: Built) -> tuple[nn.Module, list[dict] | None]:
    return built if isinstance(built, tuple) else (built, None)


def run_training(dataset: str, backbone: str, variant: str, params: Mapping[str, Any],
                 factory: ModelFactory = base_factory, root: Path | None = None,
                 history_len: int | None = None) -> FitResult:
    """Train one run and write `train/` whole (atomically) plus its DVCLive logs."""
    ctx = run_context(dataset, backbone, variant, params, root=root)
    torch.manual_seed(ctx.train_cfg.seed)
    model, groups = unpack(factory(ctx))
    train = ctx.load_split("train", history_len)
    valid = ctx.load_split("valid", history_len)
    with atomic_dir(ctx.train_dir) as out:
        write_json(out / CONFIG_FILE, run_config(ctx, train, history_len or ctx.history_len))
        return fit(model, train, valid, ctx.train_cfg, out, groups, live_dir=ctx.live_dir, state_dir=ctx.state_dir)


def run_config(ctx: RunContext, train: RerankData, history_len: int) -> dict[str, Any]:
    return {
        "dataset": ctx.dataset,
        "backbone": ctx.backbone,
        "variant": ctx.variant,
        "backbone_config": dataclasses.asdict(ctx.backbone_cfg),
        "train_config": dataclasses.asdict(ctx.train_cfg),
        "history_len": history_len,
        "n_items": ctx.catalog.n_items,
        "n_categories": ctx.catalog.n_categories,
        "n_candidates": train.n_candidates,
        "n_train_samples": len(train),
    }


def train_base(dataset: str, backbone: str, params: Mapping[str, Any], root: Path | None = None) -> FitResult:
    """The `train` stage: the Base variant of `backbone` on `dataset`."""
    return run_training(dataset, backbone, "base", params, root=root)


def train_any(dataset: str, backbone: str, variant: str, params: Mapping[str, Any], root: Path | None = None) -> FitResult:
    """Train any variant: Base here, augmented variants through the retriever's joint training."""
    if variant == "base":
        return train_base(dataset, backbone, params, root)
    from ur4rec.retriever.joint import train_variant

    return train_variant(dataset, backbone, variant, params, root=root)


def trained_context(dataset: str, backbone: str, variant: str, params: Mapping[str, Any],
                    root: Path | None = None) -> tuple[RunContext, dict[str, Any]]:
    """The context of a finished run, with the backbone config it was trained with (from config.json)."""
    paths = DatasetPaths(dataset, root if root is not None else DATA_ROOT)
    config_path = paths.run(backbone, variant) / "train" / CONFIG_FILE
    if not config_path.exists():
        raise FileNotFoundError(f"{config_path}: no trained run (run `ur4rec train` / the train stage first)")
    saved = json.loads(config_path.read_text(encoding="utf-8"))
    return run_context(dataset, backbone, variant, params, saved["backbone_config"], root), saved


def load_trained(ctx: RunContext, factory: ModelFactory = base_factory) -> nn.Module:
    """Rebuild the model with `factory` and load its best checkpoint, in eval mode."""
    model, _ = unpack(factory(ctx))
    load_weights(model, ctx.train_dir / "model.safetensors")
    return model.eval()
