"""CLI command for the encode stage."""

from __future__ import annotations

import typer

from ur4rec.cli.command import command
from ur4rec.cli.common import DatasetOpt, ParamsOpt, SetOpt, read_settings
from ur4rec.config import DEFAULT_PARAMS


@command()
def encode(dataset: DatasetOpt, params: ParamsOpt = DEFAULT_PARAMS, sets: SetOpt = None) -> None:
    """Encode LLM preferences/knowledge and raw texts with the frozen encoder into data/<dataset>/emb/."""
    from ur4rec.runs.encoding import encode as run_encode

    report = run_encode(read_settings(params, sets), dataset)
    texts = report["texts"]
    typer.echo(
        f"{dataset}: {texts['unique']} distinct texts, {texts['encoded']} encoded, {texts['cache_hits']} from cache "
        f"in {report['seconds']:.1f}s"
    )
    for kind, info in report["kinds"].items():
        extra = f", replaced {info['replaced']} ({info['policy']})" if info.get("replaced") else ""
        extra += f", {info['blank']} blank" if info.get("blank") else ""
        typer.echo(f"  {kind}: {info['n']} vectors{extra}")
