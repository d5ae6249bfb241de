"""The settings the data stages read (fetch, prepare): the top-level lists' shape, `fetch:`, `dataset:` and
`prepare:`, parsed and cross-checked before any work starts.

A stage parses only the sections it reads, so its code fingerprint holds only those sections' config code:
fetch and prepare never depend on the LLM, the encoder or any model (`ur4rec.runs.text_settings` and
`ur4rec.runs.settings` add those). `ur4rec doctor` parses the whole file.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from ur4rec.config import DEFAULT_PARAMS, ParamsError, check_name, load_params, merged, section
from ur4rec.data.config import DatasetConfig, FetchConfig, PrepareConfig
from ur4rec.data.formats import FORMAT_NAMES

TOP_LEVEL = ("datasets", "backbones", "variants", "seeds", "fetch", "dataset", "prepare", "llm", "encoder", "train",
             "backbone", "evaluate", "retriever", "variant", "variant_sets", "report")
LEAKY_MARK = "LEAKY"


@dataclass(frozen=True)
class DataSettings:
    datasets: list[str]
    fetch: FetchConfig
    dataset: dict[str, DatasetConfig]
    prepare: PrepareConfig

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


def load_data_settings(path: str | Path = DEFAULT_PARAMS, overrides: list[str] | None = None) -> DataSettings:
    return parse_data_settings(load_params(path, overrides), str(path))


def parse_data_settings(params: Mapping[str, Any], where: str = "params") -> DataSettings:
    unknown = sorted(set(params) - set(TOP_LEVEL))
    if unknown:
        raise ParamsError(f"{where}: unknown top-level key(s) {unknown}; known: {list(TOP_LEVEL)}")
    settings = DataSettings(
        datasets=names(params, "datasets"),
        fetch=section(FetchConfig, params.get("fetch"), "fetch"),
        dataset={n: section(DatasetConfig, b, f"dataset.{n}") for n, b in (params.get("dataset") or {}).items()},
        prepare=section(PrepareConfig, params.get("prepare"), "prepare"),
    )
    check_data(settings)
    return settings


def fields_of(settings: Any) -> dict[str, Any]:
    """A settings object's fields as keyword arguments (shallow: the typed sections stay as they are)."""
    return {f.name: getattr(settings, f.name) for f in dataclasses.fields(settings)}


def names(params: Mapping[str, Any], key: str, allow_empty: bool = False) -> list[str]:
    value = params.get(key)
    if value is None and allow_empty:
        return []
    if not isinstance(value, list) or (not value and not allow_empty) or not all(isinstance(v, str) for v in value):
        raise ParamsError(f"`{key}` must be a {'' if allow_empty else 'non-empty '}list of names, got {value!r}")
    if len(set(value)) != len(value):
        raise ParamsError(f"`{key}` lists a name twice: {value}")
    for name in value:
        check_name(name, f"`{key}`")
    return list(value)


def check_data(s: DataSettings) -> None:
    if s.prepare.llm_history_cut != "before_targets":
        raise ParamsError("prepare.llm_history_cut must stay before_targets; set none only in a "
                          f"dataset's own `prepare:` block (a dataset named with {LEAKY_MARK})")
    for name in s.datasets:
        s.dataset_config(name)
    for name, ds in s.dataset.items():
        check_name(name, "dataset")
        if ds.format not in FORMAT_NAMES:
            raise ParamsError(f"dataset.{name}.format: {ds.format!r} has no loader; known formats: {list(FORMAT_NAMES)}")
        prepare = s.prepare_for(name)
        if ds.clean_twin is not None and (ds.clean_twin not in s.dataset or s.is_leaky(ds.clean_twin)):
            raise ParamsError(f"dataset.{name}.clean_twin: {ds.clean_twin!r} must name a clean dataset of `dataset:`")
        if prepare.llm_history_cut == "none" and LEAKY_MARK not in name:
            raise ParamsError(f"dataset.{name}: llm_history_cut: none lets the LLM see the targets; such a dataset "
                              f"must carry {LEAKY_MARK} in its name so every path and table shows it")
