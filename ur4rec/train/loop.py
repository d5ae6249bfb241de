"""The one training loop every model uses: Base backbones and the augmented variants alike.

It trains any `nn.Module` whose `forward(batch) -> scores [B, C]` with the listwise "backbone loss": softmax
cross-entropy over each candidate list with the target (at `target_pos`) as the true class, i.e. the negative
log-likelihood of picking the target out of its C candidates. The same loss serves all five backbones, so
their differences come from the architectures, not from the objectives.

Model selection and early stopping read the VALIDATION split only: after each epoch the validation
`select_metric` is computed; the best epoch's weights are kept and returned; training stops after
`patience` epochs without improvement. With `validate_start` the starting weights are scored first and
compete too (a warm-started run then never ends worse on validation than where it began). The test split
never enters this module.

Reproducible: each epoch's shuffling and dropout are drawn from generators seeded by (seed, epoch), so a run
resumed after an interruption (see `ur4rec.train.resume`) continues exactly as if it had never stopped.
"""

from __future__ import annotations

import dataclasses
import resource
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ur4rec.eval.metrics import parse_metric, score_metric
from ur4rec.io import write_json
from ur4rec.train.batch import RerankData
from ur4rec.train.checkpoint import save_weights, state_to_cpu
from ur4rec.train.config import TrainConfig
from ur4rec.train.resume import LoopState, discard, fingerprint, load_state, save_state

VALID_LOGGED = ("map@10", "ndcg@10")


@dataclass
class FitResult:
    best_epoch: int                  # 0-based epoch whose weights were kept; -1: the starting weights
    best_valid: float                # its validation `select_metric`
    select_metric: str
    epochs_run: int
    stopped_early: bool
    resumed_from_epoch: int = 0
    mean_epoch_seconds: float = 0.0      # wall clock of the training pass (validation excluded)
    mean_epoch_cpu_seconds: float = 0.0  # CPU time of the same: the wall time on free cores at threads=1
    train_samples_per_second: float = 0.0
    peak_rss_mb: float = 0.0
    start_valid: float | None = None     # validation `select_metric` of the starting weights (validate_start)
    history: list[dict[str, Any]] = field(default_factory=list)


def backbone_loss(scores: torch.Tensor, target_pos: torch.Tensor) -> torch.Tensor:
    """Listwise softmax cross-entropy over the candidate list, the target being the true class."""
    return F.cross_entropy(scores, target_pos)


@torch.no_grad()
def predict(model: nn.Module, data: RerankData, batch_size: int = 256, progress: bool = False) -> np.ndarray:
    """Scores `[n_samples, n_candidates]` (float32) in the data's order, with the model in eval mode."""
    was_training = model.training
    model.eval()
    out = np.empty((len(data), data.n_candidates), dtype=np.float32)
    row = 0
    bar = tqdm(data.batches(batch_size), total=data.n_batches(batch_size), desc="predict", unit="batch",
               disable=not progress, leave=False)
    for batch in bar:
        scores = model(batch)
        out[row:row + len(batch)] = scores.float().cpu().numpy()
        row += len(batch)
    model.train(was_training)
    return out


def labels_of(data: RerankData) -> np.ndarray:
    labels = np.zeros((len(data), data.n_candidates), dtype=np.float32)
    labels[np.arange(len(data)), data.target_pos.numpy()] = 1.0
    return labels


def validate(model: nn.Module, data: RerankData, cfg: TrainConfig) -> dict[str, float]:
    """Validation metrics: the selection metric and the ones logged every epoch."""
    scores = predict(model, data, cfg.eval_batch_size)
    labels = labels_of(data)
    return {name: score_metric(name, scores, labels) for name in dict.fromkeys((cfg.select_metric, *VALID_LOGGED))}


def epoch_seed(seed: int, epoch: int) -> int:
    return (seed * 1_000_003 + epoch) % (2**63)


def train_epoch(model: nn.Module, optimizer: torch.optim.Optimizer, data: RerankData, cfg: TrainConfig,
                epoch: int, params: list[nn.Parameter]) -> float:
    """One pass over `data` in the epoch's seeded order; returns the mean loss."""
    model.train()
    order = torch.Generator().manual_seed(epoch_seed(cfg.seed, epoch))
    total, seen = 0.0, 0
    bar = tqdm(data.batches(cfg.batch_size, order), total=data.n_batches(cfg.batch_size),
               desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="batch", disable=not cfg.progress, leave=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(epoch_seed(cfg.seed + 1, epoch))  # dropout
        for batch in bar:
            loss = backbone_loss(model(batch), batch.target_pos)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"non-finite loss {loss.item()} in epoch {epoch + 1}; lower the learning rate")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip > 0:
                nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            optimizer.step()
            total += loss.item() * len(batch)
            seen += len(batch)
            bar.set_postfix(loss=f"{total / seen:.4f}")
    return total / max(seen, 1)


def make_optimizer(model: nn.Module, cfg: TrainConfig, param_groups: list[dict] | None) -> torch.optim.AdamW:
    """AdamW over `param_groups` (each may set its own lr) or over all trainable parameters."""
    if cfg.lr is None:
        raise ValueError("train config has no lr: set backbone.<name>.lr (or train.lr to override all)")
    groups = param_groups or [{"params": [p for p in model.parameters() if p.requires_grad]}]
    return torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)


def open_live(live_dir: Path | None, resumed: bool):
    """A DVCLive logger writing metrics/plots under `live_dir` (no Git experiment, no dvc.yaml edits)."""
    if live_dir is None:
        return nullcontext(None)
    from dvclive import Live

    return Live(str(live_dir), resume=resumed, save_dvc_exp=False, dvcyaml=None, report=None)


def fit(
    model: nn.Module,
    train_data: RerankData,
    valid_data: RerankData,
    cfg: TrainConfig,
    out_dir: str | Path,
    param_groups: list[dict] | None = None,
    live_dir: str | Path | None = None,
    state_dir: str | Path | None = None,
) -> FitResult:
    """Train `model` with early stopping on `valid_data`; write the best weights to `out_dir/model.safetensors`
    and a summary to `out_dir/fit.json`; leave `model` holding the best weights.

    `param_groups` (AdamW groups, e.g. a smaller lr for a pre-trained part) default to all trainable
    parameters at `cfg.lr`. `live_dir`: DVCLive per-epoch metrics. `state_dir`: epoch-level resume state,
    removed once training finishes.
    """
    parse_metric(cfg.select_metric)
    for name, data in (("training", train_data), ("validation", valid_data)):
        if len(data) == 0:
            raise ValueError(f"{data.source or name + ' data'}: no {name} samples (model selection needs both splits)")
    out_dir = Path(out_dir)
    state_dir = Path(state_dir) if state_dir is not None else None
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    optimizer = make_optimizer(model, cfg, param_groups)
    params = [p for group in optimizer.param_groups for p in group["params"]]
    expected = fingerprint(cfg, model, [train_data.sample_ids, valid_data.sample_ids])
    restored = load_state(state_dir, expected, model, optimizer) if state_dir is not None else None
    state, best_weights = restored if restored else (LoopState(fingerprint=expected), state_to_cpu(model))
    if restored is None and cfg.validate_start:
        state.start_valid = state.best = validate(model, valid_data, cfg)[cfg.select_metric]
    resumed_from = state.epoch
    with open_live(Path(live_dir) if live_dir is not None else None, resumed=restored is not None) as live:
        while state.epoch < cfg.epochs and (state.epoch == 0 or state.bad_epochs < cfg.patience):
            record = run_epoch(model, optimizer, train_data, valid_data, cfg, state.epoch, params)
            state.history.append(record)
            if record[f"valid_{cfg.select_metric}"] > state.best:
                state.best, state.best_epoch, state.bad_epochs = record[f"valid_{cfg.select_metric}"], state.epoch, 0
                best_weights = state_to_cpu(model)
            else:
                state.bad_epochs += 1
            state.epoch += 1
            log_epoch(live, record)
            if state_dir is not None:
                save_state(state_dir, state, model, optimizer, best_weights)
    model.load_state_dict(best_weights)
    result = summarise(state, cfg, len(train_data), resumed_from)
    save_weights(model, out_dir / "model.safetensors")
    write_json(out_dir / "fit.json", dataclasses.asdict(result))
    discard(state_dir)
    return result


def run_epoch(model: nn.Module, optimizer: torch.optim.Optimizer, train_data: RerankData, valid_data: RerankData,
              cfg: TrainConfig, epoch: int, params: list[nn.Parameter]) -> dict[str, Any]:
    """Train one epoch, then score validation; the epoch's log record."""
    started, cpu_started = time.perf_counter(), time.process_time()
    loss = train_epoch(model, optimizer, train_data, cfg, epoch, params)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    valid = validate(model, valid_data, cfg)
    return {"epoch": epoch, "train_loss": loss, "seconds": seconds, "cpu_seconds": cpu_seconds,
            **{f"valid_{k}": v for k, v in valid.items()}}


def log_epoch(live: Any, record: dict[str, Any]) -> None:
    if live is None:
        return
    live.log_metric("train/loss", record["train_loss"])
    live.log_metric("train/epoch_seconds", record["seconds"])
    for key, value in record.items():
        if key.startswith("valid_"):
            live.log_metric(f"valid/{key.removeprefix('valid_')}", value)
    live.next_step()


def summarise(state: LoopState, cfg: TrainConfig, n_train: int, resumed_from: int) -> FitResult:
    seconds = [r["seconds"] for r in state.history]
    mean = float(np.mean(seconds)) if seconds else 0.0
    return FitResult(
        best_epoch=state.best_epoch,
        best_valid=state.best,
        select_metric=cfg.select_metric,
        epochs_run=state.epoch,
        stopped_early=state.epoch < cfg.epochs,
        resumed_from_epoch=resumed_from,
        mean_epoch_seconds=mean,
        mean_epoch_cpu_seconds=float(np.mean([r["cpu_seconds"] for r in state.history])) if seconds else 0.0,
        train_samples_per_second=n_train / mean if mean else 0.0,
        peak_rss_mb=peak_rss_mb(),
        start_valid=state.start_valid,
        history=state.history,
    )


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
