"""The Typer application and the decorator that registers a command on it inside the error boundary.

The command modules (`ur4rec.cli.data`, `.llm`, ...) import this module; `ur4rec.cli.app` imports them, so no
module imports the one that imports it.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import typer

from ur4rec.cli.boundary import boundary

app = typer.Typer(
    name="ur4rec",
    help="UR4Rec pipeline: fetch -> prepare -> generate -> encode -> train -> pretrain -> evaluate -> report.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def command(group: typer.Typer | None = None, *args: Any, **kwargs: Any) -> Callable:
    """Register a command (on `app`, or on a sub-app such as `cache`) that runs inside the error boundary."""

    def register(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def guarded(*a: Any, **k: Any) -> Any:
            with boundary():
                return fn(*a, **k)

        return (group or app).command(*args, **kwargs)(guarded)

    return register


@app.callback()
def _root() -> None:
    """UR4Rec pipeline commands (each reads params.yaml; see --params and -S)."""
