"""Recformer's pre-training, kept simple: item-item contrastive learning plus masked language modelling.

For each training list, the user's history text (most recent first) should pick out the next item's text
(the list's target, encoded alone) among the other lists' targets in the batch: a softmax over cosine
similarities / temperature, as in Recformer. The MLM term (weight `mlm_weight`, 15% of the history's
non-special tokens, 80% [MASK] / 10% random / 10% kept) keeps the encoder a language model of the attribute
texts. The MLM head (transform + decoder tied to the word embeddings) exists only here and is dropped after.

Simplifications: one MLM pass on the history side only (Recformer masks both sides); token-level rather than
whole-word masking; the pairs come from our training lists (history -> target) rather than random cut points
of full sequences; no learning-rate warm-up.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ur4rec.models.recformer import Recformer
from ur4rec.models.recformer_text import SPECIAL, TextBatch


class MLMHead(nn.Module):
    """BERT's prediction head: dense + GELU + LayerNorm, then the (tied) word-embedding decoder."""

    def __init__(self, word_embeddings: nn.Embedding):
        super().__init__()
        width = word_embeddings.weight.shape[1]
        self.transform = nn.Sequential(nn.Linear(width, width), nn.GELU(), nn.LayerNorm(width))
        self.word_embeddings = word_embeddings
        self.bias = nn.Parameter(torch.zeros(word_embeddings.weight.shape[0]))

    def forward(self, hidden: Tensor) -> Tensor:
        return self.transform(hidden) @ self.word_embeddings.weight.T + self.bias


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


def contrastive_loss(users: Tensor, targets: Tensor, target_ids: Tensor, temperature: float) -> Tensor:
    """In-batch softmax over cosine similarities; another list with the same target is not a negative."""
    logits = F.cosine_similarity(users.unsqueeze(1), targets.unsqueeze(0), dim=-1) / temperature
    same = target_ids.unsqueeze(0) == target_ids.unsqueeze(1)
    logits = logits.masked_fill(same & ~torch.eye(len(target_ids), dtype=torch.bool, device=logits.device),
                                float("-inf"))
    return F.cross_entropy(logits, torch.arange(len(target_ids), device=logits.device))


def pretrain_step(model: Recformer, head: MLMHead, history: Tensor, targets: Tensor,
                  generator: torch.Generator) -> Tensor:
    cfg = model.cfg
    users = model.inputs.users(history)
    items = model.inputs.single_items(targets.tolist())
    loss = contrastive_loss(model.text(users.to(model.device)), model.text(items.to(model.device)),
                            targets.to(model.device), cfg.temperature)
    if cfg.mlm_weight > 0:
        masked, labels = mask_tokens(users, model.mask_token_id, head.bias.shape[0], cfg.mlm_probability, generator)
        chosen = (labels != -100).to(model.device)
        if chosen.any():
            # the vocabulary-wide logits only where a token was masked: the rest would be most of the step's cost
            hidden = model.text.hidden_states(masked.to(model.device))[chosen]
            loss = loss + cfg.mlm_weight * F.cross_entropy(head(hidden), labels.to(model.device)[chosen])
    return loss


def pretrain(model: Recformer, data, seed: int = 0) -> list[float]:
    """Pre-train `model` in place on `data`'s lists (anything with `history`, `candidates`, `target_pos`) for
    `pretrain_epochs` epochs; returns the mean loss of each epoch."""
    cfg = model.cfg
    if cfg.mlm_weight > 0 and model.mask_token_id is None:
        raise ValueError(f"recformer pre-training: the tokenizer of {cfg.text_model!r} has no mask token; "
                         "set mlm_weight: 0")
    head = MLMHead(model.text.model.get_input_embeddings()).to(model.device)
    params = [p for p in model.text.parameters() if p.requires_grad] + list(head.transform.parameters()) + [head.bias]
    optimizer = torch.optim.AdamW(params, lr=cfg.pretrain_lr)
    targets = data.candidates[torch.arange(len(data.candidates)), data.target_pos]
    generator = torch.Generator().manual_seed(seed)
    was_training = model.training
    model.train()
    losses = []
    for _ in range(cfg.pretrain_epochs):
        order = torch.randperm(len(targets), generator=generator)
        total = 0.0
        for start in range(0, len(order), cfg.pretrain_batch_size):
            rows = order[start:start + cfg.pretrain_batch_size]
            loss = pretrain_step(model, head, data.history[rows], targets[rows], generator)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(rows)
        losses.append(total / max(len(targets), 1))
    model.train(was_training)
    return losses
