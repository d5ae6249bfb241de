"""CLI commands for the encode part of the pipeline."""

from __future__ import annotations

from typing import Annotated

import typer

from ur4rec.cli import app
from ur4rec.cli.common import ParamsOpt, SetOpt, read_params
from ur4rec.config import DEFAULT_PARAMS, ParamsError


@app.command()
def encode(
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="Dataset name, e.g. ml-100k.")],
    params: ParamsOpt = DEFAULT_PARAMS,
    sets: SetOpt = None,
) -> None:
    """Encode LLM preferences/knowledge and raw texts with the frozen encoder into data/<dataset>/emb/."""
    from ur4rec.encode.encode import encode_dataset

    try:
        report = encode_dataset(dataset, read_params(params, sets))
    except ParamsError as exc:
        raise typer.BadParameter(str(exc)) from exc
    texts = report["texts"]
    typer.echo(
        f"{dataset}: {texts['unique']} distinct texts, {texts['encoded']} encoded, {texts['cache_hits']} from cache "
        f"in {report['seconds']:.1f}s"
    )
    for kind, info in report["kinds"].items():
        extra = f", replaced {info['replaced']} ({info['policy']})" if info.get("replaced") else ""
        extra += f", {info['blank']} blank" if info.get("blank") else ""
        typer.echo(f"  {kind}: {info['n']} vectors{extra}")
