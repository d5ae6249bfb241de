"""An artifact cut short on disk is one `error:` line naming the file and the stage that rewrites it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap

import pytest
import torch
from safetensors.torch import save_file

from tests.conftest import REPO_ROOT
from tests.faults.conftest import assert_one_error_line, cli
from tests.llm.helpers import PREPARE

pytestmark = pytest.mark.timeout(900)


def cut_short(path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


@pytest.fixture
def project(tmp_path, prepared):
    """A project folder: its pipeline file, and a prepared dataset where the pipeline keeps it."""
    shutil.copy(REPO_ROOT / "dvc.yaml", tmp_path / "dvc.yaml")
    shutil.copytree(prepared.prepared, tmp_path / "data" / "ml-100k" / "prepared")
    return tmp_path


def overrides() -> list[str]:
    return [arg for item in PREPARE for arg in ("-S", item)]


@pytest.mark.parametrize("keep", [0.5, 0.0])
def test_a_truncated_train_parquet_is_one_line_naming_prepare(project, keep):
    cut_short(project / "data/ml-100k/prepared/train.parquet", keep)
    proc = cli("train", "-d", "ml-100k", "-b", "prm", "--seed", "0", "--params", str(REPO_ROOT / "params.yaml"),
               *overrides(), cwd=project)
    assert_one_error_line(proc, "data/ml-100k/prepared/train.parquet", "dvc repro prepare@ml-100k")


def test_a_truncated_users_parquet_is_one_line_naming_prepare(project, tiny_llama):
    cut_short(project / "data/ml-100k/prepared/users.parquet")
    proc = cli("generate", "-d", "ml-100k", "--params", str(REPO_ROOT / "params.yaml"), *overrides(),
               "-S", "llm.backend=transformers", "-S", f"llm.model={tiny_llama}", cwd=project)
    assert_one_error_line(proc, "users.parquet", "dvc repro prepare@ml-100k")
    assert not (project / "data/ml-100k/llm").exists()


def test_a_truncated_checkpoint_is_one_line_naming_its_training_stage(tmp_path):
    """The real reader (safetensors) inside the real boundary, on a Base checkpoint where training writes it."""
    shutil.copy(REPO_ROOT / "dvc.yaml", tmp_path / "dvc.yaml")
    weights = tmp_path / "data/ml-100k/runs/prm/seed0/base/train/model.safetensors"
    weights.parent.mkdir(parents=True)
    save_file({"w": torch.zeros(256, 64)}, str(weights))
    cut_short(weights)
    script = textwrap.dedent(f"""
        from safetensors.torch import load_file
        from ur4rec.cli.boundary import boundary
        with boundary():
            load_file({str(weights.relative_to(tmp_path))!r})
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)))
    assert_one_error_line(proc, "model.safetensors", "dvc repro train@ml-100k-prm-0")


def test_outside_a_pipeline_the_fix_is_to_delete_and_rerun(tmp_path):
    path = tmp_path / "loose.parquet"
    path.write_bytes(b"PAR1 cut")
    script = textwrap.dedent(f"""
        import polars as pl
        from ur4rec.cli.boundary import boundary
        with boundary():
            pl.read_parquet({str(path)!r})
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)))
    assert_one_error_line(proc, str(path), "delete it")


def test_a_bug_still_shows_its_traceback_and_where_to_report_it(tmp_path):
    """Only damage is mapped: a reader's other complaints (asking for a column that is not there) stay bugs."""
    good = tmp_path / "x.parquet"
    script = textwrap.dedent(f"""
        import pyarrow as pa, pyarrow.parquet as pq
        from ur4rec.cli.boundary import boundary
        pq.write_table(pa.table({{"a": [1]}}), {str(good)!r})
        with boundary():
            pq.read_table({str(good)!r}, columns=["b"])
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)))
    assert proc.returncode == 2 and "Traceback" in proc.stderr
    assert "this is a bug in ur4rec" in proc.stderr
    assert "[project.urls]" in proc.stderr or "/issues" in proc.stderr  # declared once, in pyproject.toml
