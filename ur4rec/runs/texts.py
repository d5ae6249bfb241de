"""The text stages: LLM generation and frozen encoding, from typed settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ur4rec.paths import DATA_ROOT, DatasetPaths
from ur4rec.runs.settings import Settings


def generate(s: Settings, dataset: str, root: Path = DATA_ROOT) -> dict[str, Any]:
    from ur4rec.llm.generate import generate_dataset

    return generate_dataset(s.llm, s.dataset_config(dataset).domain, DatasetPaths(dataset, root))


def encode(s: Settings, dataset: str, root: Path = DATA_ROOT, progress: bool = True) -> dict[str, Any]:
    from ur4rec.encode.encode import encode_dataset

    return encode_dataset(s.encoder, DatasetPaths(dataset, root), progress)
