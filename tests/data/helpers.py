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


def prepare_fixture(raw: Path, out: Path, fmt: str, *overrides: str, category: str | None = None) -> dict[str, Any]:
    from ur4rec.data.prepare import prepare_dataset

    return prepare_dataset(fixture_params(fmt, *overrides, category=category), "fx", raw_dir=raw, out=out)
