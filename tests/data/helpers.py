"""Params for preparing fixture datasets without touching the repository's data/ folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.conftest import REPO_ROOT
from ur4rec.config import apply_override, load_params


def fixture_params(fmt: str, *overrides: str, category: str | None = None) -> dict[str, Any]:
    """The repository's params plus a dataset `fx` of format `fmt`, with 20 candidates (fixtures are tiny)."""
    params = load_params(REPO_ROOT / "params.yaml")
    params["dataset"]["fx"] = {"format": fmt, "domain": "thing", "raw_name": "fx", "category": category,
                               "min_rating": 0, "k_core": 5}
    for item in ("prepare.n_candidates=20", *overrides):
        apply_override(params, item)
    return params


def fixture_configs(fmt: str, *overrides: str, category: str | None = None):
    """(DatasetConfig, PrepareConfig) of dataset `fx`, typed as the stage would see them."""
    from ur4rec.config import section
    from ur4rec.data.config import DatasetConfig, PrepareConfig

    params = fixture_params(fmt, *overrides, category=category)
    return section(DatasetConfig, params["dataset"]["fx"], "dataset.fx"), section(PrepareConfig, params["prepare"], "prepare")


def prepare_fixture(raw: Path, out: Path, fmt: str, *overrides: str, category: str | None = None) -> dict[str, Any]:
    from ur4rec.data.prepare import prepare_dataset

    dataset, cfg = fixture_configs(fmt, *overrides, category=category)
    return prepare_dataset("fx", dataset, cfg, raw_dir=raw, out=out)
