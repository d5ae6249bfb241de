"""The `ur4rec` command line: one command per pipeline stage, plus tools (doctor, cache, compare, dag).

Heavy libraries (torch, vllm, transformers) are imported inside the commands so `ur4rec --help` is instant.
Every command runs inside the error boundary: a bad input or setting is one `error: ...` line, a bug a
traceback and where to report it.
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


# Each module adds its commands to `app`; the order here is the order in --help.
from ur4rec.cli import doctor, data, llm, encode, runs, report, share, exp, dag_cmd  # noqa: E402,F401


def main() -> None:
    with boundary():
        app()

