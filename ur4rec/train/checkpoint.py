"""Model and optimizer state in safetensors files (never pickle), written atomically."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, load_model, save_file, save_model
from torch import nn

from ur4rec.errors import UserError
from ur4rec.io import atomic_path, write_json


DIGEST_KEY = "ur4rec_sha256"  # safetensors metadata: the sha256 of the tensors (names, dtypes, shapes, bytes)


class CheckpointError(UserError, ValueError):
    """A checkpoint that cannot be read, or whose tensors are not the ones written (truncated, bit-flipped)."""


def tensors_digest(tensors: dict[str, torch.Tensor]) -> str:
    """sha256 over the tensors in name order: what a checkpoint records about itself, checked on every read
    (safetensors itself checks the header, not the bytes, so a flipped bit would load silently)."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].detach().to("cpu").contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def save_weights(model: nn.Module, path: str | Path) -> None:
    """Write `model`'s state (parameters and persistent buffers) with the digest of its tensors; shared tensors
    are stored once, as safetensors' `save_model` does."""
    with atomic_path(path) as tmp:
        save_model(model, str(tmp))
        tensors = load_file(str(tmp))  # the names safetensors kept (one of each shared group)
        save_file(tensors, str(tmp), metadata={DIGEST_KEY: tensors_digest(tensors)})


def read_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint, checked against the digest it records (older files record none)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    try:
        with safe_open(str(path), framework="pt") as handle:
            recorded = (handle.metadata() or {}).get(DIGEST_KEY)
        tensors = load_file(str(path))
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types for damaged files
        raise CheckpointError(f"{path}: not a readable checkpoint ({' '.join(str(exc).split())[:160]}); rerun the "
                              "stage that wrote it (dvc repro -f <stage>) or delete the file") from exc
    if recorded is not None and tensors_digest(tensors) != recorded:
        raise CheckpointError(f"{path}: checkpoint damaged (its tensors do not match the digest written with them); "
                              "rerun the stage that wrote it (dvc repro -f <stage>) or delete the file")
    return tensors


def load_weights(model: nn.Module, path: str | Path) -> nn.Module:
    """Load a checkpoint into `model` strictly: a missing or unexpected tensor names the file and the key, a
    damaged file is one line naming it."""
    path = Path(path)
    read_checkpoint(path)  # checked first; safetensors then maps shared tensors back onto the model
    missing, unexpected = load_model(model, str(path), strict=False)
    if missing or unexpected:
        raise ValueError(f"{path}: checkpoint does not match the model: missing {missing}, unexpected {unexpected}")
    return model


def state_to_cpu(model: nn.Module) -> dict[str, torch.Tensor]:
    """A detached copy of the state dict (the in-memory best model)."""
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def save_optimizer(optimizer: torch.optim.Optimizer, directory: Path) -> None:
    """Optimizer tensors into `optimizer.safetensors`, everything else (hyper-parameters) into JSON."""
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {}
    for index, slots in state["state"].items():
        for key, value in slots.items():
            target = tensors if torch.is_tensor(value) else scalars
            target[f"{index}/{key}"] = value.contiguous() if torch.is_tensor(value) else value
    with atomic_path(directory / "optimizer.safetensors") as tmp:
        save_file(tensors, str(tmp))
    write_json(directory / "optimizer.json", {"param_groups": state["param_groups"], "scalars": scalars})


def load_optimizer(optimizer: torch.optim.Optimizer, directory: Path) -> None:
    meta = json.loads((directory / "optimizer.json").read_text(encoding="utf-8"))
    slots: dict[int, dict[str, Any]] = {}
    items = list(load_file(str(directory / "optimizer.safetensors")).items()) + list(meta["scalars"].items())
    for name, value in items:
        index, key = name.split("/", 1)
        slots.setdefault(int(index), {})[key] = value
    optimizer.load_state_dict({"state": slots, "param_groups": meta["param_groups"]})
