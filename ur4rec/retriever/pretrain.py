"""Pre-training of the retriever (Algorithm 1, lines 9–18): L_CL + α·L_PIM against the frozen Base backbone.

For every training sample (user, history, target): Z = [e_u; e of the last m history items] (eq. 5),
e^pref = Retriever(P, Z) (eq. 6), e_pos / e_neg = Retriever(h) without cross-attention (eq. 7) for the target
and M random negatives (never one of the user's items), InfoNCE over them with max-over-proxies cosine; and
PIM logits = Linear(avg of the K proxy outputs of Retriever([P; h_i], Z)) (eq. 8) for the target and
`pim_negatives` of the negatives, with BCE. h_i comes from the trained Base checkpoint and stays frozen.

The epoch with the lowest validation loss (valid split, negatives drawn once from a fixed seed) is kept.
Output `data/<ds>/runs/<backbone>/<variant>/pretrain/`: `retriever.safetensors`, `config.json`,
`metrics.json` (per-epoch losses, throughput), written whole and atomically. Variants without pre-training
write only `config.json` saying so, in a moment, so the DAG has one shape for every variant.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm.auto import tqdm

from ur4rec.io import atomic_dir, write_json
from ur4rec.paths import DATA_ROOT, DatasetPaths
from ur4rec.retriever.augment import maybe_bf16
from ur4rec.retriever.build import build_retriever
from ur4rec.retriever.config import PretrainConfig, RetrieverConfig, retriever_config
from ur4rec.retriever.keys import preference_keys
from ur4rec.retriever.losses import info_nce, pim_loss, pretrain_loss
from ur4rec.retriever.model import Retriever
from ur4rec.retriever.negatives import NegativeSampler
from ur4rec.retriever.variants import VariantConfig, variant_config

WEIGHTS_FILE = "retriever.safetensors"
CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.json"


@dataclasses.dataclass
class PretrainTensors:
    """Everything pre-training reads, as tensors: frozen h_i, the vector tables, and the samples."""

    h_table: torch.Tensor  # [n_items + 1, h_dim], from the Base backbone
    user_table: torch.Tensor  # [n_users + 1, D]
    item_table: torch.Tensor  # [n_items + 1, D]
    train: Any  # RerankData
    valid: Any  # RerankData
    sampler: NegativeSampler


def step_losses(
    retriever: Retriever,
    data: PretrainTensors,
    batch: Any,
    negatives: torch.Tensor,
    cfg: PretrainConfig,
    objectives: tuple[str, ...],
    z_history: int,
) -> dict[str, torch.Tensor]:
    """The enabled objectives' losses for one batch (`negatives [B, M]`), plus their weighted total."""
    z, z_mask = preference_keys(data.user_table, data.item_table, batch.user_ids, batch.history, z_history)
    pos = batch.candidates.gather(1, batch.target_pos.unsqueeze(1)).squeeze(1)
    out: dict[str, torch.Tensor] = {}
    if "cl" in objectives:
        pref = retriever.preference(z, z_mask)
        e_pos = retriever.items(data.h_table[pos])
        e_neg = retriever.items(data.h_table[negatives])
        out["cl"] = info_nce(pref.float(), e_pos.float(), e_neg.float(), cfg.tau)
    if "pim" in objectives:
        ids = torch.cat([pos.unsqueeze(1), negatives[:, : cfg.pim_negatives]], dim=1)
        labels = torch.zeros(ids.shape, dtype=torch.float32)
        labels[:, 0] = 1.0
        out["pim"] = pim_loss(retriever.match(data.h_table[ids], z, z_mask).float(), labels)
    out["loss"] = pretrain_loss(out.get("cl"), out.get("pim"), cfg.alpha)
    return out


def pretrain(
    retriever: Retriever,
    data: PretrainTensors,
    cfg: PretrainConfig,
    objectives: tuple[str, ...],
    z_history: int,
    bf16: bool = False,
    progress: bool = True,
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Train `retriever` in place; return the best epoch's weights (by validation loss) and a summary."""
    torch.manual_seed(cfg.seed)
    optimizer = torch.optim.AdamW(retriever.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    valid_negatives = data.sampler.sample(data.valid.user_ids, cfg.n_negatives, np.random.default_rng(cfg.seed + 1))
    best, best_state, history, seconds = float("inf"), _state(retriever), [], 0.0
    for epoch in range(cfg.epochs):
        started = time.perf_counter()
        train = _train_epoch(retriever, optimizer, data, cfg, objectives, z_history, epoch, bf16, progress)
        seconds += time.perf_counter() - started
        valid = _evaluate(retriever, data, valid_negatives, cfg, objectives, z_history, bf16)
        history.append({"epoch": epoch, **{f"train_{k}": v for k, v in train.items()}, **{f"valid_{k}": v for k, v in valid.items()}})
        if valid["loss"] < best:
            best, best_state = valid["loss"], _state(retriever)
    retriever.load_state_dict(best_state)
    summary = {
        "best_epoch": int(np.argmin([h["valid_loss"] for h in history])) if history else -1,
        "best_valid_loss": best if history else None,
        "epochs": cfg.epochs,
        "train_samples_per_second": len(data.train) * cfg.epochs / seconds if seconds else 0.0,
        "history": history,
    }
    return best_state, summary


def _train_epoch(retriever, optimizer, data, cfg, objectives, z_history, epoch, bf16, progress) -> dict[str, float]:
    retriever.train()
    order = torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch)
    rng = np.random.default_rng([cfg.seed, epoch])
    sums: dict[str, float] = {}
    seen = 0
    bar = tqdm(data.train.batches(cfg.batch_size, order), total=data.train.n_batches(cfg.batch_size),
               desc=f"pretrain {epoch + 1}/{cfg.epochs}", unit="batch", disable=not progress, leave=False)
    for batch in bar:
        negatives = data.sampler.sample(batch.user_ids, cfg.n_negatives, rng)
        with maybe_bf16(bf16, negatives.device):
            losses = step_losses(retriever, data, batch, negatives, cfg, objectives, z_history)
        if not torch.isfinite(losses["loss"]):
            raise FloatingPointError(f"non-finite pre-training loss in epoch {epoch + 1}; lower retriever.pretrain.lr")
        optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        nn.utils.clip_grad_norm_(retriever.parameters(), 5.0)
        optimizer.step()
        seen += len(batch)
        for k, v in losses.items():
            sums[k] = sums.get(k, 0.0) + v.item() * len(batch)
        bar.set_postfix(loss=f"{sums['loss'] / seen:.4f}")
    return {k: v / len(data.train) for k, v in sums.items()}


@torch.no_grad()
def _evaluate(retriever, data, negatives, cfg, objectives, z_history, bf16) -> dict[str, float]:
    retriever.eval()
    sums: dict[str, float] = {}
    for start in range(0, len(data.valid), cfg.batch_size):
        idx = torch.arange(start, min(start + cfg.batch_size, len(data.valid)))
        with maybe_bf16(bf16, idx.device):
            losses = step_losses(retriever, data, data.valid.take(idx), negatives[idx], cfg, objectives, z_history)
        for k, v in losses.items():
            sums[k] = sums.get(k, 0.0) + v.item() * len(idx)
    return {k: v / max(len(data.valid), 1) for k, v in sums.items()}


def _state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


# ---------------------------------------------------------------- the stage


def pretrain_dir(dataset: str, backbone: str, variant: str, root: Path | None = None) -> Path:
    return DatasetPaths(dataset, root if root is not None else DATA_ROOT).run(backbone, variant) / "pretrain"


def run_pretrain(dataset: str, backbone: str, variant: str, params: Mapping[str, Any], root: Path | None = None,
                 progress: bool = True) -> dict[str, Any]:
    """The `pretrain` stage: pre-train this variant's retriever, or write the no-pre-training marker."""
    vcfg = variant_config(params, variant)
    out_dir = pretrain_dir(dataset, backbone, variant, root)
    if not vcfg.needs_pretraining:
        marker = {"pretrained": False, "variant": variant, "kind": vcfg.kind, "objectives": list(vcfg.objectives)}
        with atomic_dir(out_dir) as tmp:
            write_json(tmp / CONFIG_FILE, marker)
        return marker
    rcfg = retriever_config(params)
    retriever, data, z_history = _setup(dataset, backbone, vcfg, rcfg, params, root)
    state, summary = pretrain(retriever, data, rcfg.pretrain, tuple(vcfg.objectives), z_history, rcfg.arch.bf16, progress)
    config = {"pretrained": True, "variant": variant, "backbone": backbone, "n_proxies": retriever.n_proxies,
              "h_dim": data.h_table.shape[1], "z_dim": data.user_table.shape[1], "z_history": z_history,
              "objectives": list(vcfg.objectives), "z_source": vcfg.z_source,
              "arch": dataclasses.asdict(rcfg.arch), "pretrain": dataclasses.asdict(rcfg.pretrain)}
    with atomic_dir(out_dir) as tmp:
        save_file({k: v.contiguous() for k, v in state.items()}, str(tmp / WEIGHTS_FILE))
        write_json(tmp / CONFIG_FILE, config)
        write_json(tmp / METRICS_FILE, summary)
    print(f"{dataset}/{backbone}/{variant}: pre-trained {rcfg.pretrain.epochs} epochs, best valid loss "
          f"{summary['best_valid_loss']:.4f}, {summary['train_samples_per_second']:.1f} samples/s")
    return summary


def _setup(dataset, backbone, vcfg: VariantConfig, rcfg: RetrieverConfig, params, root):
    from ur4rec.encode.store import EmbeddingStore
    from ur4rec.retriever.build import count_users
    from ur4rec.train.run import load_trained, trained_context

    ctx, _ = trained_context(dataset, backbone, "base", params, root)
    base = load_trained(ctx)
    n_items = ctx.catalog.n_items
    with torch.no_grad():
        h_table = base.item_repr(torch.arange(n_items + 1)).float()
    z_history = rcfg.for_backbone(backbone).z_history
    store = EmbeddingStore(ctx.paths.emb)
    user_kind, item_kind = vcfg.store_kinds
    n_users = count_users(ctx.paths.prepared)
    history_len = max(z_history, 1)
    data = PretrainTensors(
        h_table=h_table,
        user_table=store.table(user_kind, n_users + 1),
        item_table=store.table(item_kind, n_items + 1),
        train=ctx.load_split("train", history_len),
        valid=ctx.load_split("valid", history_len),
        sampler=NegativeSampler.from_interactions(ctx.paths.prepared / "interactions.parquet", n_items),
    )
    retriever = build_retriever(rcfg, vcfg, backbone, h_table.shape[1], store.dim)
    return retriever, data, z_history


def load_pretrained_state(folder: Path) -> dict[str, torch.Tensor] | None:
    """The pre-trained retriever weights in a pretrain output folder, or None for a variant without them."""
    path = folder / WEIGHTS_FILE
    if not (folder / CONFIG_FILE).exists():
        raise FileNotFoundError(f"{folder}: no pre-training output (run the pretrain stage first)")
    return load_file(str(path)) if path.exists() else None
