"""The one training loop: Base backbones, augmented variants and the retriever's pre-training all run on it.

What is trained and how it is scored is a `Task`: it yields training batches, turns a batch into named losses
(`"loss"` is the one minimised) and scores the model on VALIDATION data. Everything else lives here, once:
seeding, AdamW with parameter groups, gradient clipping, early stopping and model selection on the task's
validation metric, DVCLive logging, epoch-level resume and the best checkpoint. The test split never enters.

Repeatable: each epoch's batch order, sampling and dropout come from seeds derived from (seed, epoch), so a
run resumed after an interruption (`ur4rec.train.resume`) continues exactly as if it had never stopped.

Data-parallel under torchrun (`ur4rec.train.distributed`): every process draws the same global batches and
trains on its slice of each; rank 0 validates, selects and writes.
"""

from __future__ import annotations

import dataclasses
import resource
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Protocol

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ur4rec.config import ParamsError
from ur4rec.io import write_json
from ur4rec.train import distributed
from ur4rec.train.checkpoint import save_weights, state_to_cpu
from ur4rec.train.config import TrainConfig
from ur4rec.train.distributed import World
from ur4rec.train.resume import LoopState, discard, fingerprint, load_state, save_state

WEIGHTS_FILE = "model.safetensors"
FIT_FILE = "fit.json"


class Task(Protocol):
    """What the loop trains on. `select_mode` says whether a higher (`max`) or lower (`min`) validation
    value of the selection metric is better."""

    select_mode: str
    n_train: int

    def n_batches(self, batch_size: int) -> int: ...

    def batches(self, batch_size: int, seed: int) -> Iterator[Any]:
        """Training batches of one epoch, their order and any sampling drawn from `seed`. A batch has a
        `len()` and `rows(index: slice)` (its rows as a batch: a process's share under data parallelism)."""

    def losses(self, model: nn.Module, batch: Any) -> dict[str, torch.Tensor]:
        """Named scalar losses of a batch; `"loss"` is minimised, the others are logged."""

    def validate(self, model: nn.Module) -> dict[str, float]:
        """Validation metrics; the selection metric among them."""

    def identity(self) -> list[torch.Tensor]:
        """Tensors that identify the data (sample ids), for the resume fingerprint."""


@dataclass
class FitResult:
    best_epoch: int                  # 0-based epoch whose weights were kept; -1: the starting weights
    best_valid: float                # its validation `select_metric`
    select_metric: str
    epochs_run: int
    stopped_early: bool
    resumed_from_epoch: int = 0
    mean_epoch_seconds: float = 0.0      # wall clock of the training pass (validation excluded)
    mean_epoch_cpu_seconds: float = 0.0  # CPU time of the same
    mean_valid_seconds: float = 0.0      # wall clock of one validation pass
    train_samples_per_second: float = 0.0
    peak_rss_mb: float = 0.0
    start_valid: float | None = None     # validation `select_metric` of the starting weights (validate_start)
    history: list[dict[str, Any]] = field(default_factory=list)


def epoch_seed(seed: int, epoch: int, stream: int = 0, rank: int = 0) -> int:
    """Independent seeds per (run seed, epoch, stream): stream 0 orders and samples batches (the same on every
    rank), 1 drives dropout (its own on each rank, so slices do not share masks; rank 0 keeps one process's)."""
    entropy = [seed, epoch, stream] + ([rank] if rank else [])
    return int(np.random.SeedSequence(entropy).generate_state(1, np.uint64)[0] % (2**63))


def better(mode: str, value: float, best: float) -> bool:
    return value > best if mode == "max" else value < best


def worst(mode: str) -> float:
    return float("-inf") if mode == "max" else float("inf")


def make_optimizer(model: nn.Module, cfg: TrainConfig, param_groups: list[dict] | None) -> torch.optim.AdamW:
    """AdamW over `param_groups` (each may set its own lr) or over all trainable parameters."""
    if cfg.lr is None:
        raise ValueError("train config has no lr: set backbone.<name>.lr (or train.lr to override all)")
    groups = param_groups or [{"params": [p for p in model.parameters() if p.requires_grad]}]
    return torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)


def train_epoch(model: nn.Module, optimizer: torch.optim.Optimizer, task: Task, cfg: TrainConfig, epoch: int,
                params: list[nn.Parameter], here: World = World()) -> dict[str, float]:
    """One pass over the task's training batches (this rank's slice of each); the mean of each named loss
    over the whole epoch, every rank's rows included."""
    model.train()
    sums: dict[str, float] = {}
    keys: list[str] = []
    seen = 0
    bar = tqdm(task.batches(cfg.batch_size, epoch_seed(cfg.seed, epoch)), total=task.n_batches(cfg.batch_size),
               desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="batch", disable=not (cfg.progress and here.main),
               leave=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(epoch_seed(cfg.seed, epoch, stream=1, rank=here.rank))  # dropout
        for batch in bar:
            part = distributed.shard(batch, here)
            optimizer.zero_grad(set_to_none=True)
            losses = task.losses(model, part) if len(part) else {}
            if losses:
                losses["loss"].backward()
                keys = keys or sorted(losses)  # the first batch has rows on every rank (checked in fit)
            batch_sums, n = distributed.reduce_step(params, losses, keys, len(part), here)
            if not np.isfinite(batch_sums["loss"]):
                raise FloatingPointError(f"non-finite loss {batch_sums['loss'] / n} in epoch {epoch + 1}; "
                                         "lower the learning rate")
            if cfg.grad_clip > 0:
                nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            optimizer.step()
            seen += n
            for key, value in batch_sums.items():
                sums[key] = sums.get(key, 0.0) + value
            bar.set_postfix(loss=f"{sums['loss'] / seen:.4f}")
    return {key: value / max(seen, 1) for key, value in sums.items()}


def open_live(live_dir: Path | None, resumed: bool):
    """A DVCLive logger writing metrics/plots under `live_dir` (no Git experiment, no dvc.yaml edits)."""
    if live_dir is None:
        return nullcontext(None)
    from dvclive import Live

    return Live(str(live_dir), resume=resumed, save_dvc_exp=False, dvcyaml=None, report=None)


def fit(
    model: nn.Module,
    task: Task,
    cfg: TrainConfig,
    out_dir: str | Path,
    param_groups: list[dict] | None = None,
    live_dir: str | Path | None = None,
    state_dir: str | Path | None = None,
    inputs: str = "",
) -> FitResult:
    """Train `model` on `task` with early stopping on its validation metric; write the best weights to
    `out_dir/model.safetensors` and a summary to `out_dir/fit.json`; leave `model` holding the best weights.

    `param_groups` (AdamW groups, e.g. a smaller lr for a pre-trained part) default to all trainable
    parameters at `cfg.lr`. `live_dir`: DVCLive per-epoch metrics. `state_dir`: epoch-level resume state,
    removed once training finishes, reused only by a run with the same `inputs` digest (the runner's record of
    every setting and file the run reads). The caller seeds the process (`ur4rec.train.determinism`) before it
    builds the model, so initial weights are repeatable too.
    """
    out_dir = Path(out_dir)
    state_dir = Path(state_dir) if state_dir is not None else None
    mode = task.select_mode
    here = join(model, task, cfg)
    optimizer = make_optimizer(model, cfg, param_groups)
    params = [p for group in optimizer.param_groups for p in group["params"]]
    expected = fingerprint(cfg, model, task.identity(), inputs)
    restored = load_state(state_dir, expected, model, optimizer) if state_dir is not None else None
    state, best_weights = restored if restored else (LoopState(best=worst(mode), fingerprint=expected), state_to_cpu(model))
    if len(set(distributed.gather(state.epoch, here))) > 1:
        raise RuntimeError(f"{state_dir}: the processes read different resume states; it must be one shared folder")
    distributed.sync_module(model, here)
    if restored is None and cfg.validate_start:
        start = task.validate(model)[cfg.select_metric] if here.main else None
        state.start_valid = state.best = distributed.broadcast(start, here)
    resumed_from = state.epoch
    with open_live(Path(live_dir) if live_dir is not None and here.main else None, resumed=restored is not None) as live:
        while state.epoch < cfg.epochs and (state.epoch == 0 or state.bad_epochs < cfg.patience):
            record = run_epoch(model, optimizer, task, cfg, state.epoch, params, here)
            state.history.append(record)
            value = record[f"valid_{cfg.select_metric}"]
            if better(mode, value, state.best):
                state.best, state.best_epoch, state.bad_epochs = value, state.epoch, 0
                best_weights = state_to_cpu(model)
            else:
                state.bad_epochs += 1
            state.epoch += 1
            log_epoch(live, record)
            if state_dir is not None and here.main:
                save_state(state_dir, state, model, optimizer, best_weights)
    model.load_state_dict(best_weights)
    result = summarise(state, cfg, task.n_train, resumed_from)
    if here.main:
        save_weights(model, out_dir / WEIGHTS_FILE)
        write_json(out_dir / FIT_FILE, dataclasses.asdict(result))
        discard(state_dir)
    return result


def join(model: nn.Module, task: Task, cfg: TrainConfig) -> World:
    """This process's place among the training processes (joining their group when there are several)."""
    device = next(iter(model.parameters()), torch.empty(0)).device
    here = distributed.setup(cfg.distributed, device)
    if here.size > min(cfg.batch_size, task.n_train):
        raise ParamsError(f"train.distributed: {here.size} processes need batches of at least as many samples; "
                          f"batch size {cfg.batch_size}, {task.n_train} training samples")
    return here


def run_epoch(model: nn.Module, optimizer: torch.optim.Optimizer, task: Task, cfg: TrainConfig, epoch: int,
              params: list[nn.Parameter], here: World = World()) -> dict[str, Any]:
    """Train one epoch, then validate on rank 0; the epoch's log record (rank 0's, on every rank)."""
    started, cpu_started = time.perf_counter(), time.process_time()
    train = train_epoch(model, optimizer, task, cfg, epoch, params, here)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    record = None
    if here.main:
        valid_started = time.perf_counter()
        valid = task.validate(model)
        record = {"epoch": epoch, **{f"train_{k}": v for k, v in train.items()}, "seconds": seconds,
                  "cpu_seconds": cpu_seconds, "validation_seconds": time.perf_counter() - valid_started,
                  **{f"valid_{k}": v for k, v in valid.items()}}
    return distributed.broadcast(record, here)


def log_epoch(live: Any, record: dict[str, Any]) -> None:
    if live is None:
        return
    for key, value in record.items():
        for prefix in ("train_", "valid_"):
            if key.startswith(prefix):
                live.log_metric(f"{prefix[:-1]}/{key.removeprefix(prefix)}", value)
    live.log_metric("train/epoch_seconds", record["seconds"])
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
        mean_valid_seconds=float(np.mean([r["validation_seconds"] for r in state.history])) if seconds else 0.0,
        train_samples_per_second=n_train / mean if mean else 0.0,
        peak_rss_mb=peak_rss_mb(),
        start_valid=state.start_valid,
        history=state.history,
    )


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
