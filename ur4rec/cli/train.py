"""CLI commands for the train part of the pipeline: `ur4rec train`, `ur4rec evaluate`, `ur4rec compare`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from ur4rec.cli import app
from ur4rec.cli.common import ParamsOpt, SetOpt, read_params, user_errors
from ur4rec.config import DEFAULT_PARAMS

DatasetOpt = Annotated[str, typer.Option("--dataset", "-d", help="Dataset name (a key of `dataset` in params).")]
BackboneOpt = Annotated[str, typer.Option("--backbone", "-b", help="dlcm | prm | setrank | gru4rec | sasrec")]
VariantOpt = Annotated[str, typer.Option("--variant", help="`base` (the backbone alone) or an augmented variant.")]


@app.command()
def train(dataset: DatasetOpt, backbone: BackboneOpt, variant: VariantOpt = "base",
          params: ParamsOpt = DEFAULT_PARAMS, sets: SetOpt = None) -> None:
    """Train a backbone (or an augmented variant) with early stopping on validation, into data/<ds>/runs/."""
    from ur4rec.train.run import train_any

    with user_errors(FileNotFoundError, KeyError, ValueError):
        result = train_any(dataset, backbone, variant, read_params(params, sets))
    typer.echo(json.dumps({k: getattr(result, k) for k in ("best_epoch", "best_valid", "select_metric", "epochs_run",
                                                              "mean_epoch_seconds", "peak_rss_mb")}))


@app.command()
def evaluate(dataset: DatasetOpt, backbone: BackboneOpt, variant: VariantOpt = "base",
             params: ParamsOpt = DEFAULT_PARAMS, sets: SetOpt = None) -> None:
    """Score a trained run on the test split: per-sample and mean MAP@k / NDCG@k."""
    from ur4rec.eval.run import evaluate_any

    with user_errors(FileNotFoundError, KeyError, ValueError):
        means = evaluate_any(dataset, backbone, variant, read_params(params, sets))
    typer.echo(json.dumps(means))


@app.command()
def compare(
    a: Annotated[Path, typer.Argument(help="per_sample.parquet of the reference run.")],
    b: Annotated[Path, typer.Argument(help="per_sample.parquet of the run compared with it.")],
    metric: Annotated[str, typer.Option("--metric", "-m", help="Column to test, e.g. ndcg@10.")] = "ndcg@10",
) -> None:
    """Paired t-test of one metric between two runs evaluated on the same test samples."""
    from ur4rec.eval.significance import compare_runs

    with user_errors(FileNotFoundError, ValueError):
        result = compare_runs(a, b, metric)
    typer.echo(json.dumps({"metric": metric, "n": result.n, "mean_a": result.mean_a, "mean_b": result.mean_b,
                           "t": result.statistic, "p": result.pvalue, "significant_at_0.05": result.significant()}))

