"""CLI commands for the data part of the pipeline: `ur4rec fetch` and `ur4rec prepare`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from ur4rec.cli.command import command
from ur4rec.cli.common import DatasetOpt, ParamsOpt, SetOpt, read_settings
from ur4rec.config import DEFAULT_PARAMS


@command()
def fetch(
    dataset: DatasetOpt,
    out: Annotated[Optional[Path], typer.Option("--out", help="Folder for the raw files (default: data/raw/<dataset>).")] = None,
    params: ParamsOpt = DEFAULT_PARAMS,
    sets: SetOpt = None,
) -> None:
    """Put a dataset's raw files in place: copy from a fetch.mirrors folder, else download and verify."""
    from ur4rec.runs.data import fetch as run_fetch

    typer.echo(run_fetch(read_settings(params, sets), dataset, out))


@command()
def prepare(
    dataset: DatasetOpt,
    raw_dir: Annotated[Optional[Path], typer.Option("--raw-dir", help="Raw files (default: data/raw/<dataset>).")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="Output folder (default: data/<dataset>/prepared).")] = None,
    params: ParamsOpt = DEFAULT_PARAMS,
    sets: SetOpt = None,
) -> None:
    """Turn raw files into leak-free reranking lists (items, users, interactions, splits, stats.json)."""
    from ur4rec.runs.data import prepare as run_prepare

    stats = run_prepare(read_settings(params, sets), dataset, raw_dir, out)
    summary = {k: stats[k] for k in ("users", "items", "interactions", "samples", "skipped_lines")}
    typer.echo(json.dumps(summary))
