"""The settings the text stages read (generate, encode): the data settings plus `llm:` and `encoder:`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from ur4rec.config import DEFAULT_PARAMS, ParamsError, load_params, section
from ur4rec.encode.config import EncoderConfig
from ur4rec.llm.config import LLMConfig
from ur4rec.runs.data_settings import DataSettings, fields_of, parse_data_settings


@dataclass(frozen=True)
class TextSettings(DataSettings):
    llm: LLMConfig
    encoder: EncoderConfig


def load_text_settings(path: str | Path = DEFAULT_PARAMS, overrides: list[str] | None = None) -> TextSettings:
    return parse_text_settings(load_params(path, overrides), str(path))


def parse_text_settings(params: Mapping[str, Any], where: str = "params") -> TextSettings:
    settings = TextSettings(**fields_of(parse_data_settings(params, where)),
                            llm=section(LLMConfig, params.get("llm"), "llm"),
                            encoder=section(EncoderConfig, params.get("encoder"), "encoder"))
    for name, ds in settings.dataset.items():
        if ds.domain not in settings.llm.templates.item:
            raise ParamsError(f"dataset.{name}.domain: {ds.domain!r} has no item template; "
                              f"llm.templates.item has {sorted(settings.llm.templates.item)}")
    return settings
