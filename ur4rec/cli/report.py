"""`ur4rec report`: result tables, significance tests and plots for a dataset."""

from __future__ import annotations

from typing import Annotated

import typer

from ur4rec.cli import app
from ur4rec.cli.common import ParamsOpt, SetOpt, read_params
from ur4rec.config import DEFAULT_PARAMS


@app.command()
def report(
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="Dataset name (a key of `dataset:`).")],
    params: ParamsOpt = DEFAULT_PARAMS,
    sets: SetOpt = None,
) -> None:
    """Write data/report/<dataset>/results.md, results.json and plots from the evaluated runs."""
    from ur4rec.report.build import build_report

    summary = build_report(dataset, read_params(params, sets))
    typer.echo(f"{len(summary['runs'])} runs reported; missing: {summary['missing'] or 'none'}")
    typer.echo(f"see data/report/{dataset}/results.md")
