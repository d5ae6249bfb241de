"""The whole params file as one typed object, parsed and cross-checked once before any work starts.

Every stage and CLI command loads `Settings` first, so a run never fails an hour in on a setting it could
have refused at the start: an unknown key, a dataset whose domain has no item template or whose format has
no loader, a backbone or variant the registries do not know, a K missing for a backbone, a LEAKY setting
under a clean name. Below this layer only typed configs travel, never the raw params dict.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from ur4rec import models
from ur4rec.config import DEFAULT_PARAMS, ParamsError, load_params, merged, section
from ur4rec.data.config import DatasetConfig, FetchConfig, PrepareConfig
from ur4rec.data.formats import FORMAT_NAMES
from ur4rec.encode.config import EncoderConfig
from ur4rec.eval.config import EvalConfig
from ur4rec.eval.metrics import parse_metric
from ur4rec.llm.config import LLMConfig
from ur4rec.models.base import BackboneConfig
from ur4rec.paths import BASE_ARM
from ur4rec.report.config import ReportConfig
from ur4rec.retriever.config import RetrieverConfig, parse_retriever
from ur4rec.retriever.variants import VariantConfig, parse_variants
from ur4rec.train.config import TrainConfig

TOP_LEVEL = ("datasets", "backbones", "variants", "seeds", "fetch", "dataset", "prepare", "llm", "encoder", "train",
             "backbone", "evaluate", "retriever", "variant", "variant_sets", "report")
LEAKY_MARK = "LEAKY"


@dataclass(frozen=True)
class BackboneSpec:
    """One entry of `backbone:`: the registered model it builds (`model:`, default: the entry's name) and its
    typed config. Two entries may build the same model with different settings (e.g. `dlcm-hist`)."""

    name: str
    model: str
    config: BackboneConfig


@dataclass(frozen=True)
class Settings:
    datasets: list[str]
    backbones: list[str]
    variants: list[str]
    seeds: list[int]
    fetch: FetchConfig
    dataset: dict[str, DatasetConfig]
    prepare: PrepareConfig
    llm: LLMConfig
    encoder: EncoderConfig
    train: TrainConfig
    backbone: dict[str, BackboneSpec]
    evaluate: EvalConfig
    retriever: RetrieverConfig
    variant: dict[str, VariantConfig]
    report: ReportConfig
    variant_sets: dict[str, list[str]] = field(default_factory=dict)

    # ---------------------------------------------------------------- lookups with clear errors

    def dataset_config(self, name: str) -> DatasetConfig:
        if name not in self.dataset:
            raise ParamsError(f"unknown dataset {name!r}: params `dataset:` defines {sorted(self.dataset)}")
        return self.dataset[name]

    def prepare_for(self, name: str) -> PrepareConfig:
        """`prepare:` with the dataset's own `prepare:` overrides applied."""
        overrides = self.dataset_config(name).prepare
        if not overrides:
            return self.prepare
        return section(PrepareConfig, merged(dataclasses.asdict(self.prepare), overrides), f"dataset.{name}.prepare")

    def is_leaky(self, name: str) -> bool:
        return self.prepare_for(name).llm_history_cut == "none"

    def backbone_spec(self, name: str) -> BackboneSpec:
        if name not in self.backbone:
            raise ParamsError(f"unknown backbone {name!r}: params `backbone:` defines {sorted(self.backbone)}")
        return self.backbone[name]

    def variant_config(self, name: str) -> VariantConfig:
        if name not in self.variant:
            raise ParamsError(f"unknown variant {name!r}: params `variant:` defines {sorted(self.variant)}")
        return self.variant[name]

    def train_config(self, backbone: str, seed: int, joint: bool = False) -> TrainConfig:
        """The loop settings of one run: `train:`, the backbone's lr (unless `train.lr`) and epoch bound, the
        run's seed, and for the augmented arms the `retriever.joint` overrides."""
        cfg = dataclasses.replace(self.train, seed=seed)
        own = self.backbone_spec(backbone).config
        if cfg.lr is None:
            cfg = dataclasses.replace(cfg, lr=own.lr)
        if own.epochs is not None:
            cfg = dataclasses.replace(cfg, epochs=own.epochs)
        if joint:
            cfg = dataclasses.replace(cfg, **self.retriever.joint.train_overrides())
        return cfg

    def per_backbone(self, backbone: str):
        return self.retriever.for_backbone(backbone, self.backbone_spec(backbone).model)


def load_settings(path: str | Path = DEFAULT_PARAMS, overrides: list[str] | None = None) -> Settings:
    """Read, type and cross-check a params file; every problem is a `ParamsError` naming the key."""
    return parse_settings(load_params(path, overrides), str(path))


def parse_settings(params: Mapping[str, Any], where: str = "params") -> Settings:
    unknown = sorted(set(params) - set(TOP_LEVEL))
    if unknown:
        raise ParamsError(f"{where}: unknown top-level key(s) {unknown}; known: {list(TOP_LEVEL)}")
    if "seed" in (params.get("train") or {}):
        raise ParamsError(f"{where}: train.seed is gone: list the run seeds in the top-level `seeds:`")
    settings = Settings(
        datasets=_names(params, "datasets"),
        backbones=_names(params, "backbones"),
        variants=_names(params, "variants", allow_empty=True),
        seeds=_seeds(params.get("seeds", [0])),
        fetch=section(FetchConfig, params.get("fetch"), "fetch"),
        dataset={n: section(DatasetConfig, b, f"dataset.{n}") for n, b in (params.get("dataset") or {}).items()},
        prepare=section(PrepareConfig, params.get("prepare"), "prepare"),
        llm=section(LLMConfig, params.get("llm"), "llm"),
        encoder=section(EncoderConfig, params.get("encoder"), "encoder"),
        train=section(TrainConfig, params.get("train"), "train"),
        backbone={n: _backbone(n, b) for n, b in (params.get("backbone") or {}).items()},
        evaluate=section(EvalConfig, params.get("evaluate"), "evaluate"),
        retriever=parse_retriever(params.get("retriever")),
        variant=parse_variants(params.get("variant")),
        report=section(ReportConfig, params.get("report"), "report"),
        variant_sets={k: list(v) for k, v in (params.get("variant_sets") or {}).items()},
    )
    check(settings)
    return settings


def _names(params: Mapping[str, Any], key: str, allow_empty: bool = False) -> list[str]:
    value = params.get(key)
    if value is None and allow_empty:
        return []
    if not isinstance(value, list) or (not value and not allow_empty) or not all(isinstance(v, str) for v in value):
        raise ParamsError(f"`{key}` must be a {'' if allow_empty else 'non-empty '}list of names, got {value!r}")
    if len(set(value)) != len(value):
        raise ParamsError(f"`{key}` lists a name twice: {value}")
    return list(value)


def _seeds(value: Any) -> list[int]:
    if not isinstance(value, list) or not value or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0
                                                          for v in value):
        raise ParamsError(f"`seeds` must be a non-empty list of integers >= 0, got {value!r}")
    if len(set(value)) != len(value):
        raise ParamsError(f"`seeds` lists a seed twice: {value}")
    return list(value)


def _backbone(name: str, block: Mapping[str, Any] | None) -> BackboneSpec:
    block = dict(block or {})
    model = block.pop("model", name)
    if model not in models.names():
        raise ParamsError(f"backbone.{name}.model: {model!r} is not a registered model; known: {models.names()}")
    return BackboneSpec(name, model, models.make_config(model, block))


def check(s: Settings) -> None:
    """Cross-references between sections: everything a run will look up exists and fits."""
    if s.prepare.llm_history_cut != "before_targets":
        raise ParamsError("prepare.llm_history_cut must stay before_targets; set none only in a "
                          f"dataset's own `prepare:` block (a dataset named with {LEAKY_MARK})")
    for name in s.datasets:
        s.dataset_config(name)
    for name, ds in s.dataset.items():
        if ds.format not in FORMAT_NAMES:
            raise ParamsError(f"dataset.{name}.format: {ds.format!r} has no loader; known formats: {list(FORMAT_NAMES)}")
        if ds.domain not in s.llm.templates.item:
            raise ParamsError(f"dataset.{name}.domain: {ds.domain!r} has no item template; "
                              f"llm.templates.item has {sorted(s.llm.templates.item)}")
        prepare = s.prepare_for(name)
        if ds.clean_twin is not None and (ds.clean_twin not in s.dataset or s.is_leaky(ds.clean_twin)):
            raise ParamsError(f"dataset.{name}.clean_twin: {ds.clean_twin!r} must name a clean dataset of `dataset:`")
        if prepare.llm_history_cut == "none" and LEAKY_MARK not in name:
            raise ParamsError(f"dataset.{name}: llm_history_cut: none lets the LLM see the targets; such a dataset "
                              f"must carry {LEAKY_MARK} in its name so every path and table shows it")
    parse_metric(s.train.select_metric)
    parse_metric(s.report.focus_metric)
    for name in s.backbones:
        spec = s.backbone_spec(name)
        max_candidates = getattr(spec.config, "max_candidates", None)
        for ds in s.datasets:
            n_candidates = s.prepare_for(ds).n_candidates
            if max_candidates is not None and max_candidates < n_candidates:
                raise ParamsError(f"backbone.{name}.max_candidates={max_candidates} < prepare.n_candidates={n_candidates}")
    for name in s.variants:
        variant = s.variant_config(name)
        if name == BASE_ARM:
            raise ParamsError(f"variant name {BASE_ARM!r} is reserved for the backbone alone")
        if variant.uses_retriever or variant.kind == "pooled":
            for backbone in s.backbones:
                s.per_backbone(backbone)
    for set_name, members in s.variant_sets.items():
        missing = [m for m in members if m not in s.variant]
        if missing:
            raise ParamsError(f"variant_sets.{set_name}: {missing} not defined under `variant:`")
