"""The reranking backbones (the paper's five, and its Table 5 baselines LRURec and Recformer), found by name (as RecBole finds its models): `build("sasrec", cfg, ...)`.

    from ur4rec.models import build, names
    model = build("prm", prm_config, catalog, aug_dim=0)

`cfg` is the backbone's params block (a mapping, checked against the backbone's config dataclass so a typo is
an error) or an instance of that dataclass. Every model is a `Backbone`: see `ur4rec.models.base`.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, TypeVar

from ur4rec.config import section
from ur4rec.models.base import Backbone, BackboneConfig
from ur4rec.models.catalog import ItemCatalog

B = TypeVar("B", bound=type[Backbone])

REGISTRY: dict[str, type[Backbone]] = {}


def register(name: str) -> Callable[[B], B]:
    """Class decorator: make a backbone buildable by `name` (lower case, as in params.yaml)."""

    def add(cls: B) -> B:
        if name in REGISTRY and REGISTRY[name] is not cls:
            raise ValueError(f"backbone {name!r} registered twice ({REGISTRY[name].__name__}, {cls.__name__})")
        cls.name = name
        REGISTRY[name] = cls
        return cls

    return add


def names() -> list[str]:
    return sorted(REGISTRY)


def lookup(name: str) -> type[Backbone]:
    try:
        return REGISTRY[name.lower()]
    except KeyError:
        raise KeyError(f"unknown backbone {name!r}; known: {names()}") from None


def make_config(name: str, cfg: Mapping[str, Any] | BackboneConfig | None) -> BackboneConfig:
    """The typed config of backbone `name` from its params block (unknown keys are an error)."""
    cls = lookup(name)
    if isinstance(cfg, cls.Config):
        return cfg
    if isinstance(cfg, BackboneConfig):
        raise TypeError(f"backbone {name!r} takes a {cls.Config.__name__}, got {type(cfg).__name__}")
    return section(cls.Config, cfg, where=f"backbone.{name}")


def build(name: str, cfg: Mapping[str, Any] | BackboneConfig | None, catalog: ItemCatalog, aug_dim: int = 0) -> Backbone:
    """Instantiate backbone `name` over `catalog` (sizes, category ids, texts when the model reads them)."""
    return lookup(name)(make_config(name, cfg), catalog, aug_dim)


# Importing the modules registers them.
from ur4rec.models import dlcm, gru4rec, prm, sasrec, setrank  # noqa: E402,F401
from ur4rec.models import lrurec, recformer  # noqa: E402,F401  (Table 5 baselines)

__all__ = ["Backbone", "BackboneConfig", "ItemCatalog", "REGISTRY", "build", "lookup", "make_config", "names", "register"]
