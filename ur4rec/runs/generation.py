"""The generate stage from typed settings: LLM preferences and item knowledge for a dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ur4rec.llm.generate import generate_dataset
from ur4rec.paths import DATA_ROOT, DatasetPaths
from ur4rec.runs.settings import Settings


def generate(s: Settings, dataset: str, root: Path = DATA_ROOT) -> dict[str, Any]:
    return generate_dataset(s.llm, s.dataset_config(dataset).domain, DatasetPaths(dataset, root))
