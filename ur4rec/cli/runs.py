"""CLI commands for runs: `ur4rec train`, `ur4rec pretrain`, `ur4rec evaluate` (one door each, Base or any arm)
and `ur4rec compare`."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Annotated

import typer

from ur4rec.cli.command import command
from ur4rec.cli.common import BackboneOpt, DatasetOpt, ParamsOpt, SeedOpt, SetOpt, VariantOpt, read_settings
from ur4rec.config import DEFAULT_PARAMS


def _spec(dataset: str, backbone: str, variant: str | None, seed: int):
    from ur4rec.runs.spec import RunSpec

    return RunSpec(dataset, backbone, variant, seed)


@command()
def train(dataset: DatasetOpt, backbone: BackboneOpt, variant: VariantOpt = None, seed: SeedOpt = 0,
          params: ParamsOpt = DEFAULT_PARAMS, sets: SetOpt = None) -> None:
    """Train a run with early stopping on validation: the Base backbone, or an arm (control, +BERT, +LLM, KAR,
    UR4Rec, ablations) jointly from its seed's Base."""
    from ur4rec.cli.launch import distribute
    from ur4rec.runs.training import train as run_train
    from ur4rec.runs.training import is_main_process

    settings = read_settings(params, sets)
    distribute(settings.train.distributed.nproc)
    result = run_train(settings, _spec(dataset, backbone, variant, seed))
    if is_main_process():
        typer.echo(json.dumps({k: v for k, v in dataclasses.asdict(result).items() if k != "history"}))


@command()
def pretrain(dataset: DatasetOpt, backbone: BackboneOpt, variant: VariantOpt = "ur4rec", seed: SeedOpt = 0,
             params: ParamsOpt = DEFAULT_PARAMS, sets: SetOpt = None) -> None:
    """Pre-train a variant's retriever (L_CL + alpha * L_PIM) on its seed's frozen Base item representations."""
    from ur4rec.cli.launch import distribute
    from ur4rec.runs.training import pretrain as run_pretrain, pretrain_processes
    from ur4rec.runs.training import is_main_process

    settings, spec = read_settings(params, sets), _spec(dataset, backbone, variant, seed)
    distribute(pretrain_processes(settings, [spec.variant]))
    out = run_pretrain(settings, spec)
    if is_main_process():
        typer.echo(json.dumps({k: v for k, v in out.items() if k != "history"}))


@command()
def evaluate(dataset: DatasetOpt, backbone: BackboneOpt, variant: VariantOpt = None, seed: SeedOpt = 0,
             params: ParamsOpt = DEFAULT_PARAMS, sets: SetOpt = None) -> None:
    """Score a trained run on the test split: per-list and mean MAP@k / NDCG@k."""
    from ur4rec.runs.evaluation import evaluate as run_evaluate

    typer.echo(json.dumps(run_evaluate(read_settings(params, sets), _spec(dataset, backbone, variant, seed))))


@command()
def compare(
    a: Annotated[Path, typer.Argument(help="per_sample.parquet of the reference run.")],
    b: Annotated[Path, typer.Argument(help="per_sample.parquet of the run compared with it.")],
    metric: Annotated[str, typer.Option("--metric", "-m", help="Column to test, e.g. ndcg@10.")] = "ndcg@10",
) -> None:
    """Paired t-test of one metric between two runs on the same test users (a user's lists averaged first)."""
    from ur4rec.runs.evaluation import compare_runs

    typer.echo(json.dumps(compare_runs(a, b, metric)))
