"""The generate stage from typed settings: LLM preferences and item knowledge for a dataset, once per
generation (`llm.generations`; generation g at `DatasetPaths.of_generation(g).llm`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ur4rec.io import mark_generations
from ur4rec.llm.generate import generate_dataset
from ur4rec.paths import DATA_ROOT, DatasetPaths
from ur4rec.runs.text_settings import TextSettings


def llm_cache(s: TextSettings):
    """The shared LLM output cache of the settings' model (`ur4rec.llm.cache.LLMCache`)."""
    from ur4rec.llm.cache import llm_cache as open_cache

    return open_cache(s.llm)


def generate(s: TextSettings, dataset: str, root: Path = DATA_ROOT) -> dict[str, Any]:
    """Every generation of the dataset's texts, one engine for all; returns the first's summary (each
    generation's is in its own `stats.json`)."""
    from ur4rec.llm.backends import make_backend

    paths = DatasetPaths(dataset, root)
    domain = s.dataset_config(dataset).domain
    if s.llm.generations == 1:
        summaries = [generate_dataset(s.llm, domain, paths)]
    else:
        backend = make_backend(s.llm)
        try:
            summaries = [generate_dataset(s.llm.for_generation(g), domain, paths.of_generation(g), backend)
                         for g in range(s.llm.generations)]
        finally:
            backend.close()
    seeds = [s.llm.for_generation(g).sampling.seed for g in range(s.llm.generations)]
    mark_generations(paths.llm_generations, s.llm.generations, {"sampling_seeds": seeds})
    return summaries[0]

