"""Options every command shares: `--params FILE` and repeated `-S key.path=value`, read into checked Settings."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from ur4rec.config import DEFAULT_PARAMS

ParamsOpt = Annotated[Path, typer.Option("--params", help="Parameter file to read.", show_default=True)]
SetOpt = Annotated[
    Optional[list[str]],
    typer.Option("-S", "--set", help="Override one parameter, e.g. -S train.lr=1e-3 (repeatable; value is YAML)."),
]
DatasetOpt = Annotated[str, typer.Option("--dataset", "-d", help="Dataset name (a key of `dataset:` in params).")]
BackboneOpt = Annotated[str, typer.Option("--backbone", "-b", help="A key of `backbone:` in params, e.g. prm.")]
VariantOpt = Annotated[Optional[str], typer.Option(
    "--variant", "-v", help="A key of `variant:` (control, llm, kar, ur4rec, ...); omit for the Base run.")]
SeedOpt = Annotated[int, typer.Option("--seed", help="The run's seed (one of `seeds:` for DVC's runs).")]


def read_settings(params: Path = DEFAULT_PARAMS, sets: list[str] | None = None):
    """Load and check the whole params file (a problem is one `error:` line naming the key)."""
    from ur4rec.runs.settings import load_settings

    return load_settings(params, sets or [])


def run_dvc(*args: str) -> None:
    """Run a DVC command of this environment (the same install as the stages), echoing it on stderr (stdout
    stays the command's own, e.g. a CSV); stop on failure."""
    typer.echo("$ dvc " + " ".join(args), err=True)
    proc = subprocess.run([sys.executable, "-m", "dvc", *args])
    if proc.returncode != 0:
        raise typer.Exit(proc.returncode)
