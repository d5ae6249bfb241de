"""Shared test helpers: the real datasets beside the checkout, and throw-away git+DVC projects."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from ur4rec.config import apply_override

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("UR4REC_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
# What a pipeline project needs from this checkout; copied so DVC hashes real files.
PROJECT_FILES = ("dvc.yaml", "params.yaml", ".dvcignore", "stages", "ur4rec", "templates")


def settings(*overrides: str):
    """The shipped params with `key.path=value` overrides, parsed and checked as a stage would."""
    from ur4rec.runs.settings import parse_settings

    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    for item in overrides:
        apply_override(params, item)
    return parse_settings(params)


def dataset_entry(name: str, fmt: str = "ml-100k", raw_name: str | None = None) -> str:
    """An override adding a dataset block (tests name their own fixtures)."""
    return (f"dataset.{name}={{format: {fmt}, domain: movie, raw_name: {raw_name or name}, category: null, "
            "min_rating: 0, k_core: 5}")


def shared_dataset(name: str) -> Path:
    """Path of a real dataset under ../shared/data, or skip the test with a clear message."""
    path = SHARED_DATA / name
    if not path.exists():
        pytest.skip(f"real dataset {name!r} not found at {path} (set UR4REC_SHARED_DATA to its parent folder)")
    return path


class DvcProject:
    """A temporary git+DVC repository holding a copy of the pipeline."""

    def __init__(self, root: Path):
        self.root = root

    def run(self, *args: str, check: bool = True, timeout: float = 1800) -> subprocess.CompletedProcess:
        env = dict(os.environ, PYTHONPATH=str(self.root), DVC_NO_ANALYTICS="1")
        proc = subprocess.run(args, cwd=self.root, env=env, capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return proc

    def repro(self, *targets: str) -> subprocess.CompletedProcess:
        return self.run("dvc", "repro", *targets)

    def set_params(self, *overrides: str) -> None:
        path = self.root / "params.yaml"
        params = yaml.safe_load(path.read_text())
        for item in overrides:
            apply_override(params, item)
        path.write_text(yaml.safe_dump(params, sort_keys=False))

    def ran_stages(self, proc: subprocess.CompletedProcess, code: bool = False) -> list[str]:
        """Names of stages `dvc repro` executed (not skipped), from its output. The `code` stage (fingerprints
        of the stage scripts' imports, rerun by any code edit) is left out unless `code`."""
        out = proc.stdout + proc.stderr
        ran = {line.split("'")[1] for line in out.splitlines() if line.startswith("Running stage '")}
        return sorted(ran if code else ran - {"code"})


@pytest.fixture
def dvc_project(tmp_path: Path):
    """Factory: `dvc_project(overrides...)` returns a fresh DvcProject with `fetch.mirrors` pointed at
    `<root>/mirror`, where tests write their raw fixtures."""

    def make(*overrides: str) -> DvcProject:
        root = tmp_path / "project"
        root.mkdir()
        for name in PROJECT_FILES:
            src = REPO_ROOT / name
            if src.is_dir():
                shutil.copytree(src, root / name, ignore=shutil.ignore_patterns("__pycache__"))
            elif src.exists():
                shutil.copy2(src, root / name)
        (root / "mirror").mkdir()
        project = DvcProject(root)
        project.run("git", "init", "-q")
        project.run("git", "config", "user.email", "test@example.invalid")
        project.run("git", "config", "user.name", "test")
        project.run("dvc", "init", "-q")
        project.run("dvc", "config", "core.autostage", "false")
        project.set_params("fetch.mirrors=[mirror]", *overrides)
        (root / ".gitignore").write_text("/mirror\n")
        project.run("git", "add", "-A")
        project.run("git", "commit", "-q", "-m", "init")
        return project

    return make
