"""The reranking backbones (the paper's five, and its Table 5 baselines LRURec and Recformer), found by name (as
RecBole finds its models): `build("sasrec", cfg, ...)`.

    from ur4rec.models import build, names
    model = build("prm", prm_config, catalog, aug_dim=0)

`cfg` is the backbone's params block (a mapping, checked against the backbone's config dataclass so a typo is
an error) or an instance of that dataclass. Every model is a `Backbone`: see `ur4rec.models.base`.

Names and configs come from `ur4rec.models.config` without importing any model; `lookup` imports a model's
module the first time it is built, so a process (and a stage's code fingerprint) holds only the models it uses.
"""

from __future__ import annotations

import importlib
from typing import Any, Mapping

from ur4rec.config import section
from ur4rec.models.config import MODELS, BackboneConfig, ModelEntry


def names() -> list[str]:
    return sorted(MODELS)


def entry(name: str) -> ModelEntry:
    try:
        return MODELS[name.lower()]
    except KeyError:
        raise KeyError(f"unknown backbone {name!r}; known: {names()}") from None


def lookup(name: str) -> type:
    """The model class of `name` (a `ur4rec.models.base.Backbone`), imported on first use."""
    found = entry(name)
    cls = getattr(importlib.import_module(found.module), found.cls)
    cls.name = name.lower()
    return cls


def pretraining(name: str):
    """The model's own pre-training hook (`pretraining(model, train, valid, seed) -> (module, task, loop
    settings)`, fitted by the runner on the one loop), or None for a model without one."""
    module = entry(name).pretraining
    return None if module is None else importlib.import_module(module).pretraining


def make_config(name: str, cfg: Mapping[str, Any] | BackboneConfig | None) -> BackboneConfig:
    """The typed config of backbone `name` from its params block (unknown keys are an error)."""
    config = entry(name).config
    if isinstance(cfg, config):
        return cfg
    if isinstance(cfg, BackboneConfig):
        raise TypeError(f"backbone {name!r} takes a {config.__name__}, got {type(cfg).__name__}")
    return section(config, cfg, where=f"backbone.{name}")


def build(name: str, cfg: Mapping[str, Any] | BackboneConfig | None, catalog: Any, aug_dim: int = 0):
    """Instantiate backbone `name` over `catalog` (an `ItemCatalog`: sizes, category ids, texts when the model
    reads them)."""
    return lookup(name)(make_config(name, cfg), catalog, aug_dim)


__all__ = ["BackboneConfig", "MODELS", "build", "entry", "lookup", "make_config", "names", "pretraining"]
