"""Model and optimizer state in safetensors files (never pickle), written atomically."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, load_model, save_file, save_model
from torch import nn

from ur4rec.io import atomic_path, write_json


def save_weights(model: nn.Module, path: str | Path) -> None:
    """Write `model`'s state (parameters and persistent buffers); shared tensors are handled by safetensors."""
    with atomic_path(path) as tmp:
        save_model(model, str(tmp))


def load_weights(model: nn.Module, path: str | Path) -> nn.Module:
    """Load a checkpoint into `model` strictly: a missing or unexpected tensor names the file and the key."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: checkpoint not found")
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
