"""The reranking task of the loop: listwise softmax cross-entropy over each candidate list, selection on a
validation ranking metric.

The "backbone loss" is the negative log-likelihood of picking the target (at `target_pos`) out of its C
candidates. The same loss serves every backbone and every augmented variant, so their differences come from
the architectures and the augmentation, not from the objectives.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ur4rec.eval.metrics import parse_metric, score_metric
from ur4rec.train.batch import RerankBatch, RerankData

VALID_LOGGED = ("map@10", "ndcg@10")


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


@dataclass
class RerankTask:
    """Train on `train` lists, select on `valid` lists by `select_metric` (higher is better)."""

    train: RerankData
    valid: RerankData
    select_metric: str = "ndcg@10"
    eval_batch_size: int = 256
    select_mode: str = "max"

    def __post_init__(self) -> None:
        parse_metric(self.select_metric)
        for name, data in (("training", self.train), ("validation", self.valid)):
            if len(data) == 0:
                raise ValueError(f"{data.source or name + ' data'}: no {name} samples (model selection needs both splits)")

    @property
    def n_train(self) -> int:
        return len(self.train)

    def n_batches(self, batch_size: int) -> int:
        return self.train.n_batches(batch_size)

    def batches(self, batch_size: int, seed: int) -> Iterator[RerankBatch]:
        return self.train.batches(batch_size, torch.Generator().manual_seed(seed))

    def losses(self, model: nn.Module, batch: RerankBatch) -> dict[str, torch.Tensor]:
        return {"loss": backbone_loss(model(batch), batch.target_pos)}

    def validate(self, model: nn.Module) -> dict[str, float]:
        scores = predict(model, self.valid, self.eval_batch_size)
        labels = labels_of(self.valid)
        return {name: score_metric(name, scores, labels) for name in dict.fromkeys((self.select_metric, *VALID_LOGGED))}

    def identity(self) -> list[torch.Tensor]:
        return [self.train.sample_ids, self.valid.sample_ids]
