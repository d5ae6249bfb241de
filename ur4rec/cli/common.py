"""Options every stage command shares: `--params FILE` and repeated `-S key.path=value`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

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
