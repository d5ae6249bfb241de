"""The generate stage under a real `dvc repro` after fetch and prepare; a second repro does nothing."""

from __future__ import annotations

import shutil

import polars as pl
import pytest

from tests.conftest import REPO_ROOT
from tests.fixtures.raw import write_ml100k
from tests.llm.helpers import FIXTURE, PREPARE

pytestmark = pytest.mark.slow


def test_generate_runs_after_prepare_and_once(dvc_project, tiny_llama):
    project = dvc_project(
        "datasets=[ml-100k]", *PREPARE, "llm.backend=transformers", f"llm.model={tiny_llama}", "llm.dtype=float32",
        "llm.sampling.max_new_tokens=4", "llm.batch_size=32",
    )
    if (REPO_ROOT / ".dvcignore").exists():  # bytecode written by the stage must not count as a code change
        shutil.copy2(REPO_ROOT / ".dvcignore", project.root / ".dvcignore")
    write_ml100k(project.root / "mirror" / "ml-100k", **FIXTURE)
    first = project.repro("generate@ml-100k")
    assert project.ran_stages(first) == ["fetch@ml-100k", "generate@ml-100k", "prepare@ml-100k"]
    llm = project.root / "data" / "ml-100k" / "llm"
    users = pl.read_parquet(llm / "user_preferences.parquet")
    assert users.height == pl.read_parquet(project.root / "data/ml-100k/prepared/users.parquet").height
    assert any((project.root / "data" / "cache" / "llm").glob("*.parquet"))

    assert project.ran_stages(project.repro("generate@ml-100k")) == []
    # Another stage's params do not touch generation.
    project.set_params("train.epochs=3")
    assert project.ran_stages(project.repro("generate@ml-100k")) == []
    # The item template is a dependency; the rerun finds every user prompt in the cache.
    template = project.root / "templates" / "item_movie.yaml"
    template.write_text(template.read_text().replace("Write one concise paragraph.", "Be brief."))
    assert project.ran_stages(project.repro("generate@ml-100k")) == ["generate@ml-100k"]
    assert pl.read_parquet(llm / "user_preferences.parquet").equals(users)
