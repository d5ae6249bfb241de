"""The encode stage from typed settings: frozen-encoder vectors of the LLM and raw texts of a dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ur4rec.encode.encode import encode_dataset
from ur4rec.paths import DATA_ROOT, DatasetPaths
from ur4rec.runs.settings import Settings


def encode(s: Settings, dataset: str, root: Path = DATA_ROOT, progress: bool = True) -> dict[str, Any]:
    return encode_dataset(s.encoder, DatasetPaths(dataset, root), progress)
