"""Pre-training of the retriever (Algorithm 1, lines 9–18) as a task of the shared training loop.

For every training pair (user, history, target): Z = [e_u; e of the last m history items] (eq. 5),
e^pref = Retriever(P, Z) (eq. 6), e_pos / e_neg = Retriever(h) without cross-attention (eq. 7) for the target
and M negatives (never one of the user's items; uniform or popularity-weighted, optionally plus the other
targets of the batch), InfoNCE over them with max-over-proxies cosine; and PIM logits = Linear(avg of the K
proxy outputs of Retriever([P; h_i], Z)) (eq. 8) for the target and `pim_negatives` of the negatives, with
BCE. h_i comes from the trained Base checkpoint and stays frozen.

Selection and early stopping on the VALIDATION users' pairs (negatives drawn once from the run's seed): the
loop keeps the epoch with the lowest `select_metric`. Validation also reports how often the target wins the
InfoNCE list (`hit@1`, chance 1 / (M + 1)) and the PIM accuracy, the numbers that say whether pre-training
generalises to unseen users.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch
from torch import nn

from ur4rec.retriever.augment import maybe_bf16
from ur4rec.retriever.config import PretrainConfig
from ur4rec.retriever.keys import preference_keys
from ur4rec.retriever.losses import info_nce_logits, pim_loss, pretrain_loss
from ur4rec.retriever.model import Retriever
from ur4rec.retriever.negatives import NegativeSampler
from ur4rec.train.batch import RerankBatch, RerankData


@dataclass
class PretrainData:
    """Everything pre-training reads, as tensors: frozen h_i, the vector tables, and the pairs."""

    h_table: torch.Tensor     # [n_items + 1, h_dim], from the Base backbone
    user_table: torch.Tensor  # [n_users + 1, D]
    item_table: torch.Tensor  # [n_items + 1, D]
    train: RerankData         # one pair per row: user, history, target (= candidates[target_pos])
    valid: RerankData
    sampler: NegativeSampler


@dataclass
class PairBatch:
    batch: RerankBatch
    negatives: torch.Tensor  # [B, M]

    def __len__(self) -> int:
        return len(self.batch)

    def rows(self, index: slice) -> "PairBatch":
        return PairBatch(self.batch.rows(index), self.negatives[index])


def targets_of(batch: RerankBatch) -> torch.Tensor:
    return batch.candidates.gather(1, batch.target_pos.unsqueeze(1)).squeeze(1)


class PretrainTask:
    """The loop's view of pre-training; `select_mode` min: a lower validation loss is better."""

    select_mode = "min"

    def __init__(self, data: PretrainData, cfg: PretrainConfig, objectives: tuple[str, ...], z_history: int,
                 bf16: bool, seed: int):
        if not objectives:
            raise ValueError("pre-training needs at least one objective (cl or pim)")
        self.data, self.cfg, self.objectives, self.z_history, self.bf16 = data, cfg, objectives, z_history, bf16
        self.valid_negatives = data.sampler.sample(data.valid.user_ids, cfg.n_negatives,
                                                   np.random.default_rng([seed, 7]), cfg.negative_sampling)

    @property
    def n_train(self) -> int:
        return len(self.data.train)

    def n_batches(self, batch_size: int) -> int:
        return self.data.train.n_batches(batch_size)

    def batches(self, batch_size: int, seed: int) -> Iterator[PairBatch]:
        rng = np.random.default_rng(seed)
        for batch in self.data.train.batches(batch_size, torch.Generator().manual_seed(seed)):
            negatives = self.data.sampler.sample(batch.user_ids, self.cfg.n_negatives, rng, self.cfg.negative_sampling)
            yield PairBatch(batch, negatives)

    def losses(self, model: nn.Module, pairs: PairBatch) -> dict[str, torch.Tensor]:
        with maybe_bf16(self.bf16, pairs.negatives.device):
            out = self._forward(model, pairs, in_batch=self.cfg.in_batch_negatives)
        return {k: v for k, v in out.items() if k in ("loss", "cl", "pim")}

    @torch.no_grad()
    def validate(self, model: nn.Module) -> dict[str, float]:
        was_training = model.training
        model.eval()
        sums: dict[str, float] = {}
        n = len(self.data.valid)
        for start in range(0, n, self.cfg.eval_batch_size):
            idx = torch.arange(start, min(start + self.cfg.eval_batch_size, n))
            pairs = PairBatch(self.data.valid.take(idx), self.valid_negatives[idx])
            with maybe_bf16(self.bf16, idx.device):
                out = self._forward(model, pairs, in_batch=False)
            for key, value in out.items():
                sums[key] = sums.get(key, 0.0) + float(value) * len(idx)
        model.train(was_training)
        return {key: value / max(n, 1) for key, value in sums.items()}

    def identity(self) -> list[torch.Tensor]:
        return [self.data.train.sample_ids, self.data.valid.sample_ids]

    def _forward(self, retriever: Retriever, pairs: PairBatch, in_batch: bool) -> dict[str, torch.Tensor]:
        """Losses (and, for validation, accuracies) of one batch of pairs."""
        data, cfg, batch = self.data, self.cfg, pairs.batch
        z, z_mask = preference_keys(data.user_table, data.item_table, batch.user_ids, batch.history, self.z_history)
        pos, neg = targets_of(batch), pairs.negatives
        out: dict[str, torch.Tensor] = {}
        if "cl" in self.objectives:
            pref = retriever.preference(z, z_mask).float()
            e_pos, e_neg = retriever.items(data.h_table[pos]).float(), retriever.items(data.h_table[neg]).float()
            extra = self._in_batch_mask(batch.user_ids, pos) if in_batch else None
            logits = info_nce_logits(pref, e_pos, e_neg, cfg.tau, e_pos if in_batch else None, extra)
            out["cl"] = nn.functional.cross_entropy(logits, torch.zeros(len(pos), dtype=torch.long))
            out["hit@1"] = (logits[:, : 1 + neg.shape[1]].argmax(1) == 0).float().mean()
        if "pim" in self.objectives:
            ids = torch.cat([pos.unsqueeze(1), neg[:, : cfg.pim_negatives]], dim=1)
            labels = torch.zeros(ids.shape, dtype=torch.float32)
            labels[:, 0] = 1.0
            logits = retriever.match(data.h_table[ids], z, z_mask).float()
            out["pim"] = pim_loss(logits, labels)
            out["pim_acc"] = ((logits > 0).float() == labels).float().mean()
        out["loss"] = pretrain_loss(out.get("cl"), out.get("pim"), cfg.alpha)
        return out

    def _in_batch_mask(self, users: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """`[B, B]` True where row b may use row j's target as a negative: not itself, not an item of b's."""
        u = users.numpy()[:, None].repeat(len(users), 1)
        t = targets.numpy()[None, :].repeat(len(users), 0)
        allowed = ~self.data.sampler.is_seen(u, t)
        np.fill_diagonal(allowed, False)
        return torch.from_numpy(allowed)

