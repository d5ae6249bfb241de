"""`ur4rec exp show`: `dvc exp show` cut to what a grid compares (docs/sharing.md): one row per experiment,
the run lists it set, and the report's metric of every run. The full table has a column per parameter and
per metric file, hundreds in all."""

from __future__ import annotations

import re
from typing import Annotated, Optional

import typer

from ur4rec.cli.command import app, command
from ur4rec.cli.common import ParamsOpt, SetOpt, read_settings, run_dvc
from ur4rec.config import DEFAULT_PARAMS

exp_app = typer.Typer(help="DVC experiments over the run grids: show.", no_args_is_help=True)
app.add_typer(exp_app, name="exp")

GRID = ("datasets", "backbones", "variants", "seeds")  # the params a grid experiment sets


def kept_columns(metric: str) -> str:
    """Regex of the columns kept: the experiment, the run lists, the report's `metric` of every run (with
    several datasets DVC prefixes each report's columns with its file: `data/report/<ds>/results.json:`)."""
    return "|".join(["^Experiment$", *(f"^{name}$" for name in GRID), rf"(^|:)runs\.[^:]*\.{re.escape(metric)}$"])


@command(exp_app, "show", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def exp_show(
    ctx: typer.Context,
    metric: Annotated[Optional[str], typer.Option("--metric", "-m", help="Report metric (default: report.focus_metric).")] = None,
    params: ParamsOpt = DEFAULT_PARAMS,
    sets: SetOpt = None,
) -> None:
    """One row per experiment: its run lists and the report's metric per run; other arguments go to
    `dvc exp show` (e.g. --csv, --md, -A, --sort-by)."""
    metric = metric or read_settings(params, sets).report.focus_metric
    run_dvc("exp", "show", "--no-pager", "--drop", ".*", "--keep", kept_columns(metric), *ctx.args)
