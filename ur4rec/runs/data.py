"""The data stages: fetch and prepare, from typed settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ur4rec.data.fetch import fetch_dataset
from ur4rec.data.prepare import prepare_dataset
from ur4rec.paths import DATA_ROOT, DatasetPaths
from ur4rec.runs.data_settings import DataSettings


def fetch(s: DataSettings, dataset: str, dest: Path | None = None, root: Path = DATA_ROOT) -> Path:
    return fetch_dataset(dataset, s.dataset_config(dataset), s.fetch, Path(dest or DatasetPaths(dataset, root).raw))


def prepare(s: DataSettings, dataset: str, raw_dir: Path | None = None, out: Path | None = None,
            root: Path = DATA_ROOT) -> dict[str, Any]:
    paths = DatasetPaths(dataset, root)
    return prepare_dataset(dataset, s.dataset_config(dataset), s.prepare_for(dataset), raw_dir or paths.raw,
                           out or paths.prepared)
