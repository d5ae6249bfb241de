"""Options every stage command shares: `--params FILE` and repeated `-S key.path=value`."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated, Any, Iterator, Optional

import typer

from ur4rec.config import DEFAULT_PARAMS, ParamsError, load_params

ParamsOpt = Annotated[Path, typer.Option("--params", help="Parameter file to read.", show_default=True)]
SetOpt = Annotated[
    Optional[list[str]],
    typer.Option("-S", "--set", help="Override one parameter, e.g. -S train.lr=1e-3 (repeatable; value is YAML)."),
]


def read_params(params: Path = DEFAULT_PARAMS, sets: list[str] | None = None) -> dict[str, Any]:
    """Load params for a command, turning a params error into a clean CLI error."""
    try:
        return load_params(params, sets or [])
    except ParamsError as exc:
        raise typer.BadParameter(str(exc)) from exc


@contextlib.contextmanager
def user_errors(*kinds: type[BaseException]) -> Iterator[None]:
    """Turn expected failures (missing inputs, bad data) into one `error: ...` line and exit code 1,
    instead of a traceback."""
    try:
        yield
    except kinds as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
