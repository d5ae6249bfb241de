"""`ur4rec dag`: check or rewrite dvc.yaml from the stage descriptions and their import closures."""

from __future__ import annotations

from typing import Annotated

import typer

from ur4rec.cli.command import command


@command()
def dag(write: Annotated[bool, typer.Option("--write", help="Rewrite dvc.yaml instead of checking it.")] = False) -> None:
    """Check that dvc.yaml lists every stage's code (its import closure); --write regenerates it."""
    from ur4rec.cli import dag as generator
    from ur4rec.errors import UserError
    from ur4rec.io import write_text

    if write:
        write_text(generator.ROOT / "dvc.yaml", generator.render())
        typer.echo("dvc.yaml written")
        return
    diff = generator.check()
    if diff:
        typer.echo("\n".join(diff[:60]))
        raise UserError("dvc.yaml is stale: run `ur4rec dag --write` and commit it")
    typer.echo("dvc.yaml is up to date")
