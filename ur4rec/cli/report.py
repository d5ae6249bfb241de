"""`ur4rec report`: result tables, statistics and plots for a dataset; `ur4rec reference`: its reference rows."""

from __future__ import annotations

import typer

from ur4rec.cli.command import command
from ur4rec.cli.common import DatasetOpt, ParamsOpt, SetOpt, read_settings
from ur4rec.config import DEFAULT_PARAMS


@command()
def report(dataset: DatasetOpt, params: ParamsOpt = DEFAULT_PARAMS, sets: SetOpt = None) -> None:
    """Write data/report/<dataset>/results.md, results.json and plots from the evaluated runs."""
    from ur4rec.runs.reporting import report as run_report

    summary = run_report(read_settings(params, sets), dataset)
    typer.echo(f"{len(summary['runs'])} cells reported; missing runs: {summary['missing'] or 'none'}")
    typer.echo(f"see data/report/{dataset}/results.md")


@command()
def reference(dataset: DatasetOpt, params: ParamsOpt = DEFAULT_PARAMS, sets: SetOpt = None) -> None:
    """Score TopPop and item-CF on the prepared valid and test lists: data/<dataset>/reference/ (the report's
    reference rows)."""
    from ur4rec.runs.reference import score_references

    score_references(read_settings(params, sets), dataset)
