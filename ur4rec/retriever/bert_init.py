"""Read a BERT checkpoint's shape and its first layers, to initialise the retriever (paper §3.2).

Only safetensors files are read (never pickle). Both plain `BertModel` keys (`encoder.layer.0...`) and
task-head checkpoints (`bert.encoder.layer.0...`, as bert-base-uncased ships) are accepted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open


@dataclass(frozen=True)
class BertShape:
    width: int
    n_heads: int
    ffn_dim: int
    n_layers: int
    layer_norm_eps: float
    hidden_act: str


def resolve_checkpoint(spec: str) -> Path:
    """`packaged:minilm`, a local BERT folder, or an HF id, resolved as the encoder resolves its model."""
    from ur4rec.encode.encoder import resolve_model_dir

    folder = resolve_model_dir(spec)
    if not (folder / "config.json").exists():
        raise FileNotFoundError(f"retriever init checkpoint {spec!r}: {folder} has no config.json (expected a BERT folder)")
    return folder


def read_shape(folder: Path) -> BertShape:
    cfg = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    try:
        return BertShape(
            width=int(cfg["hidden_size"]),
            n_heads=int(cfg["num_attention_heads"]),
            ffn_dim=int(cfg["intermediate_size"]),
            n_layers=int(cfg["num_hidden_layers"]),
            layer_norm_eps=float(cfg.get("layer_norm_eps", 1e-12)),
            hidden_act=str(cfg.get("hidden_act", "gelu")),
        )
    except KeyError as exc:
        raise ValueError(f"{folder / 'config.json'}: missing BERT key {exc}") from exc


def load_layers(folder: Path, n_layers: int) -> list[dict[str, torch.Tensor]]:
    """The tensors of the first `n_layers` encoder layers, keyed relative to `encoder.layer.<i>.`."""
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"{folder}: no .safetensors weights (pickle checkpoints are not loaded)")
    layers: list[dict[str, torch.Tensor]] = [{} for _ in range(n_layers)]
    for file in files:
        with safe_open(str(file), framework="pt") as fh:
            for key in fh.keys():
                index, rest = _layer_key(key)
                if index is not None and index < n_layers:
                    layers[index][rest] = fh.get_tensor(key)
    for i, layer in enumerate(layers):
        if not layer:
            raise ValueError(f"{folder}: checkpoint has no encoder layer {i} (asked for {n_layers} layers)")
    return layers


def _layer_key(key: str) -> tuple[int | None, str]:
    marker = "encoder.layer."
    pos = key.find(marker)
    if pos < 0 or key[:pos] not in ("", "bert."):
        return None, key
    index, _, rest = key[pos + len(marker):].partition(".")
    return (int(index), rest) if index.isdigit() else (None, key)
