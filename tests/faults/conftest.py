"""The fault suite: what the project guarantees when inputs, files, servers or neighbours misbehave
(docs/guarantees.md). Real components throughout: the CLI as a subprocess, the real prepare stage, tiny real
models, real Parquet and safetensors files cut short, real SIGKILLs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from tests.llm.conftest import prepared, smollm2_dir, tiny_llama  # noqa: F401 - the LLM suite's fixtures
from tests.retriever.conftest import _one_torch_thread, tiny_bert, tiny_project  # noqa: F401 - a tiny trained project


def cli(*args: str, cwd: Path | None = None, timeout: float = 600, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """`python -m ur4rec ARGS` in a fresh process, as a user or DVC runs it."""
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), PYTHONWARNINGS="ignore")
    return subprocess.run([*prefix, sys.executable, "-m", "ur4rec", *args], cwd=cwd or REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def error_lines(proc: subprocess.CompletedProcess) -> list[str]:
    return [line for line in proc.stderr.splitlines() if line.strip()]


def assert_one_error_line(proc: subprocess.CompletedProcess, *needles: str) -> str:
    """The process failed with exit status 1 and exactly one `error: ...` line on stderr (no traceback)."""
    lines = [line for line in error_lines(proc) if not line.startswith(("WARNING", "INFO"))]
    assert proc.returncode == 1, (proc.returncode, proc.stderr[-3000:])
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


@pytest.fixture
def repo_params() -> Path:
    return REPO_ROOT / "params.yaml"
