"""The generate stage from typed settings: LLM preferences and item knowledge for a dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ur4rec.llm.generate import generate_dataset
from ur4rec.paths import DATA_ROOT, DatasetPaths
from ur4rec.runs.text_settings import TextSettings


def llm_cache(s: TextSettings):
    """The shared LLM output cache of the settings' model (`ur4rec.llm.cache.LLMCache`)."""
    from ur4rec.llm.cache import llm_cache as open_cache

    return open_cache(s.llm)


def generate(s: TextSettings, dataset: str, root: Path = DATA_ROOT) -> dict[str, Any]:
    return generate_dataset(s.llm, s.dataset_config(dataset).domain, DatasetPaths(dataset, root))
