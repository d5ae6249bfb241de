"""Recformer's pre-training as a task of the one training loop: item-item contrastive learning plus masked
language modelling, on the Recformer's text encoder, before its fine-tuning.

For each training list, the user's history text (most recent first) should pick out the next item's text
(the list's target, encoded alone) among the other lists' targets in the batch: a softmax over cosine
similarities / temperature, as in Recformer. The MLM term (weight `mlm_weight`, `mlm_probability` of the
history's non-special tokens, 80% [MASK] / 10% random / 10% kept) keeps the encoder a language model of the
attribute texts. The MLM head (a transform, and a decoder tied to the word embeddings) exists only here:
`PretrainModule` holds the Recformer's encoder and the head, so the loop optimises exactly the encoder's
trainable parameters plus the head's transform and bias; the head is dropped afterwards.

`pretraining(model, train, valid, seed)` gives the runner what it fits (`ur4rec.runs.training.pretrain_backbone`):
the module, the task, and the loop settings of the Recformer config (`pretrain_epochs`, `pretrain_lr`,
`pretrain_batch_size`, `pretrain_patience`; the run's seed and the rest of `train:`).

The task: each epoch's order and masking come from the loop's epoch seed (a torch.Generator), and a batch
carries its masked tokens, so a resumed run and every process of a data-parallel run see the same masks.
Under data parallelism a process's in-batch negatives are the other targets of its own slice.
Selection (`select_mode` min) is on the VALIDATION lists' pre-training loss (contrastive + weighted MLM, the
masks drawn once from the run's seed, the lists in fixed chunks of the batch size): it is the objective
itself on held-out users, so it falls while the encoder learns what generalises and rises when it overfits
the training lists. The in-batch `hit@1` (history picks its own target among the chunk's) is logged beside it
but not used: with a batch's handful of candidates it saturates early and ignores the MLM term.

Simplifications: one MLM pass on the history side only (Recformer masks both sides); token-level rather than
whole-word masking; the pairs come from our training lists (history -> target) rather than random cut points
of full sequences; no learning-rate warm-up.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ur4rec.models.recformer import Recformer
from ur4rec.models.recformer_text import SPECIAL, TextBatch

SELECT_METRIC = "loss"


class MLMHead(nn.Module):
    """BERT's prediction head: dense + GELU + LayerNorm, then the word-embedding decoder (tied: the encoder's
    word embeddings are passed in, not held, so they stay the encoder's alone) plus a bias."""

    def __init__(self, width: int, vocab_size: int):
        super().__init__()
        self.transform = nn.Sequential(nn.Linear(width, width), nn.GELU(), nn.LayerNorm(width))
        self.bias = nn.Parameter(torch.zeros(vocab_size))

    def forward(self, hidden: Tensor, word_embeddings: Tensor) -> Tensor:
        return self.transform(hidden) @ word_embeddings.T + self.bias


class PretrainModule(nn.Module):
    """What the loop fits: the Recformer's text encoder (the same module, so the Recformer is trained in
    place) and the MLM head. Its trainable parameters are the encoder's trainable ones and the head's."""

    def __init__(self, model: Recformer, seed: int):
        super().__init__()
        self.text = model.text
        self.temperature = model.cfg.temperature
        self.mlm_weight = model.cfg.mlm_weight
        with torch.random.fork_rng(devices=[]):  # the head's start depends on the seed alone, not on the RNG's state
            torch.manual_seed(seed)
            self.head = MLMHead(self.text.width, self.word_embeddings.shape[0]).to(model.device)

    @property
    def word_embeddings(self) -> Tensor:
        return self.text.model.get_input_embeddings().weight

    @property
    def device(self) -> torch.device:
        return self.text.token_type.weight.device

    def losses(self, batch: "PretrainBatch") -> dict[str, Tensor]:
        """The batch's contrastive and MLM losses, their weighted sum, and the contrastive hit@1."""
        device = self.device
        users = self.text(batch.users.to(device))
        targets = self.text(batch.items.to(device))
        logits = contrastive_logits(users, targets, batch.targets.to(device), self.temperature)
        contrastive = F.cross_entropy(logits, torch.arange(len(batch), device=device))
        hit = (logits.argmax(1) == torch.arange(len(batch), device=device)).float().mean()
        mlm = torch.zeros((), device=device)
        if batch.masked is not None:
            chosen = (batch.labels != -100).to(device)
            if chosen.any():
                # the vocabulary-wide logits only where a token was masked: the rest would be most of the step's cost
                hidden = self.text.hidden_states(batch.masked.to(device))[chosen]
                mlm = F.cross_entropy(self.head(hidden, self.word_embeddings), batch.labels.to(device)[chosen])
        return {"loss": contrastive + self.mlm_weight * mlm, "contrastive": contrastive, "mlm": mlm, "hit@1": hit}


def mask_tokens(batch: TextBatch, mask_id: int, vocab_size: int, probability: float,
                generator: torch.Generator) -> tuple[TextBatch, Tensor]:
    """A copy of `batch` with text tokens masked BERT-style, and the labels (-100 where not masked)."""
    text = (batch.types != SPECIAL) & (batch.mask > 0)
    chosen = (torch.rand(batch.ids.shape, generator=generator) < probability) & text
    labels = torch.where(chosen, batch.ids, torch.full_like(batch.ids, -100))
    draw = torch.rand(batch.ids.shape, generator=generator)
    ids = torch.where(chosen & (draw < 0.8), torch.full_like(batch.ids, mask_id), batch.ids)
    random_ids = torch.randint(vocab_size, batch.ids.shape, generator=generator)
    ids = torch.where(chosen & (draw >= 0.8) & (draw < 0.9), random_ids, ids)
    return TextBatch(ids, batch.types, batch.item_positions, batch.mask), labels


def contrastive_logits(users: Tensor, targets: Tensor, target_ids: Tensor, temperature: float) -> Tensor:
    """`[B, B]` cosine similarities / temperature; another list with the same target is not a negative."""
    logits = F.cosine_similarity(users.unsqueeze(1), targets.unsqueeze(0), dim=-1) / temperature
    same = target_ids.unsqueeze(0) == target_ids.unsqueeze(1)
    return logits.masked_fill(same & ~torch.eye(len(target_ids), dtype=torch.bool, device=logits.device),
                              float("-inf"))


def text_rows(batch: TextBatch, index: slice) -> TextBatch:
    """Some rows of a text batch, without the padding columns none of them uses."""
    lengths = batch.mask[index].sum(1)
    width = max(int(lengths.max()) if len(lengths) else 0, 1)
    return TextBatch(*(getattr(batch, f.name)[index, :width] for f in fields(batch)))


@dataclass
class PretrainBatch:
    """Lists as encoder inputs: the user texts, their masked copy and MLM labels (None without MLM), the
    targets' ids and their one-item texts."""

    users: TextBatch
    masked: TextBatch | None
    labels: Tensor | None
    targets: Tensor
    items: TextBatch

    def __len__(self) -> int:
        return len(self.targets)

    def rows(self, index: slice) -> "PretrainBatch":
        """Some rows as a batch (a process's share of a global batch), masks included."""
        users = text_rows(self.users, index)  # the masked copy has the same padding
        return PretrainBatch(
            users,
            None if self.masked is None else text_rows(self.masked, index),
            None if self.labels is None else self.labels[index, :users.ids.shape[1]],
            self.targets[index], text_rows(self.items, index))


def targets_of(data: Any) -> Tensor:
    """The target item of each list: `candidates[target_pos]`."""
    return data.candidates[torch.arange(len(data.candidates)), data.target_pos]


class RecformerPretrainTask:
    """The loop's view of Recformer's pre-training over `train` and `valid` lists (anything with `history`,
    `candidates`, `target_pos` and `sample_ids`, e.g. `RerankData`)."""

    select_mode = "min"

    def __init__(self, model: Recformer, train: Any, valid: Any, seed: int):
        cfg = model.cfg
        if cfg.mlm_weight > 0 and model.mask_token_id is None:
            raise ValueError(f"recformer pre-training: the tokenizer of {cfg.text_model!r} has no mask token; "
                             "set mlm_weight: 0")
        for name, data in (("training", train), ("validation", valid)):
            if len(data.sample_ids) == 0:
                raise ValueError(f"recformer pre-training: no {name} lists (selection needs both splits)")
        self.inputs, self.mask_token_id = model.inputs, model.mask_token_id
        self.vocab_size = model.text.model.get_input_embeddings().weight.shape[0]
        self.mlm_probability, self.mlm_weight = cfg.mlm_probability, cfg.mlm_weight
        self.temperature, self.eval_batch_size = cfg.temperature, cfg.pretrain_batch_size
        self.train, self.valid = train, valid
        self.train_targets, self.valid_targets = targets_of(train), targets_of(valid)
        generator = torch.Generator().manual_seed(seed)  # validation masks: drawn once, the same every epoch
        self.valid_batches = [self.batch(valid.history[start:start + self.eval_batch_size],
                                         self.valid_targets[start:start + self.eval_batch_size], generator)
                              for start in range(0, len(self.valid_targets), self.eval_batch_size)]

    @property
    def n_train(self) -> int:
        return len(self.train_targets)

    def n_batches(self, batch_size: int) -> int:
        return -(-self.n_train // batch_size)

    def batch(self, history: Tensor, targets: Tensor, generator: torch.Generator) -> PretrainBatch:
        users = self.inputs.users(history)
        masked = labels = None
        if self.mlm_weight > 0:
            masked, labels = mask_tokens(users, self.mask_token_id, self.vocab_size, self.mlm_probability, generator)
        return PretrainBatch(users, masked, labels, targets, self.inputs.single_items(targets.tolist()))

    def batches(self, batch_size: int, seed: int) -> Iterator[PretrainBatch]:
        generator = torch.Generator().manual_seed(seed)  # the epoch's order and masks
        order = torch.randperm(self.n_train, generator=generator)
        for start in range(0, self.n_train, batch_size):
            rows = order[start:start + batch_size]
            yield self.batch(self.train.history[rows], self.train_targets[rows], generator)

    def losses(self, model: nn.Module, batch: PretrainBatch) -> dict[str, Tensor]:
        out = model.losses(batch)
        return {key: out[key] for key in ("loss", "contrastive", "mlm")}

    @torch.no_grad()
    def validate(self, model: nn.Module) -> dict[str, float]:
        was_training = model.training
        model.eval()
        sums: dict[str, float] = {}
        for batch in self.valid_batches:
            for key, value in model.losses(batch).items():
                sums[key] = sums.get(key, 0.0) + float(value) * len(batch)
        model.train(was_training)
        return {key: value / len(self.valid_targets) for key, value in sums.items()}

    def identity(self) -> list[Tensor]:
        """The lists, and the task's own settings (the loop's fingerprint holds only the loop's)."""
        settings = torch.tensor([self.mlm_probability, self.mlm_weight, self.temperature], dtype=torch.float64)
        return [self.train.sample_ids, self.valid.sample_ids, settings]


def pretraining(model: Recformer, train: Any, valid: Any, seed: int
                ) -> tuple[PretrainModule, RecformerPretrainTask, dict[str, Any]]:
    """What the runner fits to pre-train `model` in place: the module (encoder + MLM head), the task on the
    `train` / `valid` lists, and the loop settings that `model.cfg` sets (the rest are the run's)."""
    if not isinstance(model, Recformer):
        raise TypeError(f"Recformer's pre-training needs a Recformer, got {type(model).__name__}")
    cfg = model.cfg
    loop = {"epochs": cfg.pretrain_epochs, "lr": cfg.pretrain_lr, "batch_size": cfg.pretrain_batch_size,
            "eval_batch_size": cfg.pretrain_batch_size, "patience": cfg.pretrain_patience,
            "select_metric": SELECT_METRIC, "validate_start": False}
    return PretrainModule(model, seed), RecformerPretrainTask(model, train, valid, seed), loop
