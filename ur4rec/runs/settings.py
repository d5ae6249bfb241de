"""The whole params file as one typed object, parsed and cross-checked once before any work starts, and the
resolution of a run from it.

Every training, evaluation and report stage and every CLI command loads `Settings` first, so a run never fails
an hour in on a setting it could have refused at the start: an unknown key, a dataset whose domain has no item
template or whose format has no loader, a backbone or variant the registries do not know, a K missing for a
backbone, a LEAKY setting under a clean name. The data and text stages parse only their own sections
(`ur4rec.runs.data_settings`, `ur4rec.runs.text_settings`). Below this layer only typed configs travel.

`Settings.resolve(spec)` looks a run's names up once: the backbone, the variant, the retriever's per-backbone
settings, the loop settings and the paths travel together as a `Run`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from ur4rec import models
from ur4rec.config import DEFAULT_PARAMS, ParamsError, check_name, load_params, section
from ur4rec.eval.config import EvalConfig
from ur4rec.eval.metrics import parse_metric
from ur4rec.models.config import BackboneConfig
from ur4rec.paths import BASE_ARM, DATA_ROOT, DatasetPaths, RunPaths
from ur4rec.report.config import ReportConfig
from ur4rec.retriever.config import BackboneRetrieverConfig, RetrieverConfig, parse_retriever
from ur4rec.retriever.variants import VariantConfig, parse_variants
from ur4rec.runs.data_settings import fields_of, names
from ur4rec.runs.spec import RunSpec
from ur4rec.runs.text_settings import TextSettings, parse_text_settings
from ur4rec.train.config import TrainConfig


@dataclass(frozen=True)
class BackboneSpec:
    """One entry of `backbone:`: the registered model it builds (`model:`, default: the entry's name) and its
    typed config. Two entries may build the same model with different settings (e.g. `dlcm-hist`)."""

    name: str
    model: str
    config: BackboneConfig


@dataclass(frozen=True)
class Run:
    """One run with every name resolved: what training, pre-training and evaluation read."""

    spec: RunSpec
    backbone: BackboneSpec
    variant: VariantConfig | None        # None: the Base run
    retriever: RetrieverConfig
    per_backbone: BackboneRetrieverConfig | None  # the retriever's settings for this backbone (None: none given)
    loop: TrainConfig                    # the run's training loop settings, seed included
    paths: RunPaths

    @property
    def is_base(self) -> bool:
        return self.variant is None

    @property
    def history_len(self) -> int:
        """History read from the data: the backbone's own, or more when the variant's Z needs more items."""
        own = self.backbone.config.history_len
        if self.variant is not None and self.variant.reads_z:
            return max(own, self.retriever_settings().z_history)
        return own

    def retriever_settings(self) -> BackboneRetrieverConfig:
        if self.per_backbone is None:  # the settings check refuses this for variants that read it
            raise ParamsError(f"retriever.per_backbone has no entry for backbone {self.spec.backbone!r}")
        return self.per_backbone

    def base_paths(self) -> RunPaths:
        """The paths of the Base run of the same backbone and seed (the warm start, h_i for pre-training)."""
        return self.paths.sibling(BASE_ARM)


@dataclass(frozen=True)
class Settings(TextSettings):
    backbones: list[str]
    variants: list[str]
    seeds: list[int]
    train: TrainConfig
    backbone: dict[str, BackboneSpec]
    evaluate: EvalConfig
    retriever: RetrieverConfig
    variant: dict[str, VariantConfig]
    report: ReportConfig
    variant_sets: dict[str, list[str]] = field(default_factory=dict)
    params: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)  # as read (stage digests)

    # ---------------------------------------------------------------- lookups with clear errors

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
        own, own_model = self.backbone_spec(backbone).config, self.backbone_spec(backbone).model
        if cfg.lr is None:
            cfg = dataclasses.replace(cfg, lr=own.lr)
        if own.epochs is not None:
            cfg = dataclasses.replace(cfg, epochs=own.epochs)
        if joint:
            cfg = dataclasses.replace(cfg, **self.retriever.joint_for(backbone, own_model).train_overrides())
        return cfg

    def per_backbone(self, backbone: str) -> BackboneRetrieverConfig:
        return self.retriever.for_backbone(backbone, self.backbone_spec(backbone).model)

    def resolve(self, spec: RunSpec, root: Path = DATA_ROOT) -> Run:
        """The run `spec` names, every name looked up once."""
        bspec = self.backbone_spec(spec.backbone)
        variant = None if spec.variant is None else self.variant_config(spec.variant)
        per_backbone = self.retriever.entry(spec.backbone, bspec.model)
        # the run's own regime: `retriever.joint` with its backbone's overrides, so every reader of the run sees one
        retriever = dataclasses.replace(self.retriever, joint=self.retriever.joint_for(spec.backbone, bspec.model))
        paths = DatasetPaths(spec.dataset, root, self.generation_of(spec.seed)).run(spec.backbone, spec.arm, spec.seed)
        return Run(spec, bspec, variant, retriever, per_backbone,
                   self.train_config(spec.backbone, spec.seed, joint=variant is not None), paths)

    def generation_of(self, seed: int) -> int:
        """The LLM generation whose texts run seed `seed` reads: seed k reads generation k mod `llm.generations`,
        so seeds are independent draws of the texts too (with one generation, every seed reads the same)."""
        return seed % self.llm.generations


def load_settings(path: str | Path = DEFAULT_PARAMS, overrides: list[str] | None = None) -> Settings:
    """Read, type and cross-check a params file; every problem is a `ParamsError` naming the key."""
    return parse_settings(load_params(path, overrides), str(path))


def parse_settings(params: Mapping[str, Any], where: str = "params") -> Settings:
    if "seed" in (params.get("train") or {}):
        raise ParamsError(f"{where}: train.seed is gone: list the run seeds in the top-level `seeds:`")
    settings = Settings(
        **fields_of(parse_text_settings(params, where)),
        backbones=names(params, "backbones"),
        variants=names(params, "variants", allow_empty=True),
        seeds=_seeds(params.get("seeds", [0])),
        train=section(TrainConfig, params.get("train"), "train"),
        backbone={n: _backbone(n, b) for n, b in (params.get("backbone") or {}).items()},
        evaluate=section(EvalConfig, params.get("evaluate"), "evaluate"),
        retriever=parse_retriever(params.get("retriever")),
        variant=parse_variants(params.get("variant")),
        report=section(ReportConfig, params.get("report"), "report"),
        variant_sets={k: list(v) for k, v in (params.get("variant_sets") or {}).items()},
        params=params,
    )
    check(settings)
    return settings


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
    for key, metric in (("train.select_metric", s.train.select_metric), ("report.focus_metric", s.report.focus_metric)):
        try:
            parse_metric(metric)
        except ValueError as exc:
            raise ParamsError(f"{key}: {exc}") from exc
    for section_name, block in (("backbone", s.backbone), ("variant", s.variant)):
        for name in block:
            check_name(name, section_name)
    for name in ("weight_decay", "grad_clip"):
        if getattr(s.train, name) < 0:
            raise ParamsError(f"train.{name} must be >= 0 (0: off), got {getattr(s.train, name)}")
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
        if variant.reads_z:
            for backbone in s.backbones:
                s.per_backbone(backbone)
    for set_name, members in s.variant_sets.items():
        missing = [m for m in members if m not in s.variant]
        if missing:
            raise ParamsError(f"variant_sets.{set_name}: {missing} not defined under `variant:`")
