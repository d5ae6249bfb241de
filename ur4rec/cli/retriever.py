"""CLI commands for the retriever part of the pipeline: `ur4rec pretrain`, `ur4rec train-aug`, `ur4rec evaluate-aug`."""

from __future__ import annotations

import json
from typing import Annotated, Any, Callable

import typer

from ur4rec.cli import app
from ur4rec.cli.common import ParamsOpt, SetOpt, read_params, user_errors
from ur4rec.config import DEFAULT_PARAMS

DatasetOpt = Annotated[str, typer.Option("--dataset", "-d", help="Dataset name (a key of `dataset` in params).")]
BackboneOpt = Annotated[str, typer.Option("--backbone", "-b", help="dlcm | prm | setrank | gru4rec | sasrec")]
VariantOpt = Annotated[str, typer.Option("--variant", "-v", help="A key of `variant` in params, e.g. ur4rec, kar, ur4rec-no-cl.")]


@app.command()
def pretrain(dataset: DatasetOpt, backbone: BackboneOpt, variant: VariantOpt = "ur4rec",
             params: ParamsOpt = DEFAULT_PARAMS, sets: SetOpt = None) -> None:
    """Pre-train a variant's retriever (L_CL + alpha * L_PIM) on the frozen Base backbone's item representations."""
    from ur4rec.retriever.pretrain import run_pretrain

    out = _run(lambda p: run_pretrain(dataset, backbone, variant, p), read_params(params, sets))
    typer.echo(json.dumps({k: v for k, v in out.items() if k != "history"}))


@app.command("train-aug")
def train_aug(dataset: DatasetOpt, backbone: BackboneOpt, variant: VariantOpt = "ur4rec",
              params: ParamsOpt = DEFAULT_PARAMS, sets: SetOpt = None) -> None:
    """Jointly train an augmented variant (+BERT, +LLM, KAR, UR4Rec, ablations) with its backbone."""
    from ur4rec.retriever.joint import train_variant

    result = _run(lambda p: train_variant(dataset, backbone, variant, p), read_params(params, sets))
    typer.echo(json.dumps({k: getattr(result, k) for k in ("best_epoch", "best_valid", "select_metric", "epochs_run",
                                                              "mean_epoch_seconds", "peak_rss_mb")}))


@app.command("evaluate-aug")
def evaluate_aug(dataset: DatasetOpt, backbone: BackboneOpt, variant: VariantOpt = "ur4rec",
                 params: ParamsOpt = DEFAULT_PARAMS, sets: SetOpt = None) -> None:
    """Score a jointly trained variant on the test split: per-sample and mean MAP@k / NDCG@k."""
    from ur4rec.retriever.joint import evaluate_variant

    typer.echo(json.dumps(_run(lambda p: evaluate_variant(dataset, backbone, variant, p), read_params(params, sets))))


def _run(call: Callable[[dict], Any], params: dict) -> Any:
    with user_errors(FileNotFoundError, KeyError, ValueError):
        return call(params)
