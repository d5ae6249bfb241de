"""Epoch-level resume: after every epoch the loop's whole state is swapped into `state_dir` at once.

An interrupted training (killed, out of time) restarts at the next epoch with the same weights, optimizer
moments, best checkpoint and early-stopping counter, and continues exactly as it would have (each epoch's
shuffling and dropout are seeded from (seed, epoch)). A state written for another configuration, model or
data (fingerprint mismatch) is ignored, never half-reused: the first finished epoch replaces it. The fingerprint
holds the loop settings, the tensor shapes, the sample ids and the run's inputs digest (`inputs`: every setting
and the sha256 of every file the run reads, from the runner), so a run rerun with another dropout, another Base
checkpoint or other vectors starts afresh. A state that cannot be read (damaged by a crash or a full disk) is
ignored the same way; each case prints one line saying so.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from ur4rec.io import atomic_dir, write_json
from ur4rec.train.checkpoint import load_optimizer, load_weights, save_optimizer, save_weights

STATE_FILE = "state.json"


@dataclass
class LoopState:
    """Where the loop is: epochs done, the best validation value so far, and the per-epoch log."""

    epoch: int = 0                  # epochs completed
    best: float = float("-inf")
    best_epoch: int = -1
    bad_epochs: int = 0             # consecutive epochs without improvement
    start_valid: float | None = None  # validation score of the starting weights, when they were scored
    history: list[dict[str, Any]] = field(default_factory=list)
    fingerprint: str = ""


def fingerprint(cfg: Any, model: nn.Module, sample_ids: list[torch.Tensor], inputs: str = "") -> str:
    """Hash of what makes two trainings the same: loop settings, tensor names/shapes, the samples, and the
    run's inputs digest (`inputs`, empty when the caller has none)."""
    # Not the process count: every count draws the same global batches, so a state saved by N processes
    # continues on M.
    settings = {k: v for k, v in dataclasses.asdict(cfg).items()
                if k not in ("progress", "threads", "epochs", "distributed")}
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode() + inputs.encode())
    for name, tensor in model.state_dict().items():
        digest.update(f"{name}:{tuple(tensor.shape)};".encode())
    for ids in sample_ids:
        digest.update(ids.numpy().tobytes())
    return digest.hexdigest()[:16]


def save_state(state_dir: Path, state: LoopState, model: nn.Module, optimizer: torch.optim.Optimizer,
               best_weights: dict[str, torch.Tensor]) -> None:
    with atomic_dir(state_dir) as tmp:
        save_weights(model, tmp / "last.safetensors")
        save_file(best_weights, str(tmp / "best.safetensors"))
        save_optimizer(optimizer, tmp)
        write_json(tmp / STATE_FILE, dataclasses.asdict(state))


def load_state(state_dir: Path, expected: str, model: nn.Module, optimizer: torch.optim.Optimizer
               ) -> tuple[LoopState, dict[str, torch.Tensor]] | None:
    """Restore model and optimizer from `state_dir` if it holds a state with fingerprint `expected`."""
    path = state_dir / STATE_FILE
    if not path.exists():
        return None
    # Never reused when it is another run's or unreadable: the first epoch's state replaces it (no process
    # deletes what another may be reading).
    try:
        state = LoopState(**json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError) as exc:
        return _ignored(state_dir, f"unreadable ({type(exc).__name__})")
    if state.fingerprint != expected:
        return _ignored(state_dir, "written for other settings or inputs")
    start_weights = {k: v.clone() for k, v in model.state_dict().items()}
    start_optimizer = copy.deepcopy(optimizer.state_dict())
    try:
        best = load_file(str(state_dir / "best.safetensors"))
        load_weights(model, state_dir / "last.safetensors")
        load_optimizer(optimizer, state_dir)
    except Exception as exc:  # noqa: BLE001 - any damage to the state means: start afresh, from the start weights
        model.load_state_dict(start_weights)
        optimizer.load_state_dict(start_optimizer)
        return _ignored(state_dir, f"damaged ({type(exc).__name__}: {' '.join(str(exc).split())[:120]})")
    return state, best


def _ignored(state_dir: Path, why: str) -> None:
    print(f"note: resume state {state_dir} is {why}; training starts from the beginning and replaces it")
    return None


def discard(state_dir: Path | None) -> None:
    if state_dir is not None and state_dir.exists():
        shutil.rmtree(state_dir)
