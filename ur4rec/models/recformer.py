"""Recformer (Li et al., KDD 2023): items and users as text, encoded by one bidirectional language model.

An item is its "key value" attribute text; a user is the texts of their history items, most recent first,
cut to `history_items` items and `max_tokens` tokens. Both go through the same encoder, which adds Recformer's
token-type (key / value) and item-position embeddings to the language model's own token and position
embeddings (zero-initialised, so training starts from the language model exactly). A candidate's score is
the cosine similarity of the user vector and the candidate's vector, divided by `temperature`.

The item side, as in Recformer's fine-tuning, is a table of every catalogue item encoded alone, computed
without gradients in eval mode (no dropout) and cached:
- while training, the table is the one of the weights at the start of the pass: it is refreshed on the first
  forward after `train()` (the loop calls it once per epoch) if the weights changed since it was encoded, and
  then kept for the epoch, so only the user side is back-propagated through the encoder;
- in eval mode, it is re-encoded whenever any encoder weight changed (optimizer step, `load_state_dict`), so
  scores always reflect the current weights.
The trainable parts are the encoder (less the word embeddings with `freeze_word_embeddings` and the lowest
`freeze_layers` layers), the two added embeddings, and the projection to `dim` when `dim` differs from the
encoder's width. `item_repr` is the cached item vector through that projection (the h_i the UR4Rec retriever
reads); an aug vector is fused into it as for every backbone.

The encoder is `text_model`: `packaged:minilm` (all-MiniLM-L6-v2, the CPU default) or a local folder holding
any BERT-family model in safetensors (bert-base, or Longformer as in the paper, on a GPU). Recformer's own
pre-training (MLM + item-item contrastive), off by default, is a task of the one training loop in
`ur4rec.models.recformer_pretrain`, which the runner fits before the fine-tuning when `pretrain` is set.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ur4rec.batching import length_batches
from ur4rec.models.config import RecformerConfig
from ur4rec.errors import UserError
from ur4rec.models.base import Backbone
from ur4rec.models.catalog import ItemCatalog
from ur4rec.models.recformer_text import (
    N_TOKEN_TYPES,
    SequenceBuilder,
    TextBatch,
    tokenize_items,
)

PACKAGED_PREFIX = "packaged:"
POOLINGS = ("cls", "mean")


class MissingItemTexts(UserError, ValueError):
    """Recformer was given a catalogue without item texts."""


class TextModelError(UserError, ValueError):
    """`text_model` does not name a usable encoder."""



def text_model_dir(ref: str) -> Path:
    """`packaged:minilm` or a local folder; nothing is downloaded here."""
    if ref.startswith(PACKAGED_PREFIX):
        if ref != "packaged:minilm":
            raise TextModelError(f"recformer.text_model {ref!r}: unknown packaged model (known: packaged:minilm)")
        from ur4rec.packaged import minilm_dir

        return minilm_dir()
    path = Path(ref).expanduser()
    if not (path / "config.json").is_file():
        raise TextModelError(f"recformer.text_model {ref!r}: not a model folder (no config.json); download the "
                             "model once (huggingface-cli download NAME --local-dir DIR) and give that folder")
    return path


def load_text_model(cfg: RecformerConfig) -> tuple[nn.Module, object]:
    """The encoder (safetensors weights only) and its tokenizer, with the config's dropouts."""
    folder = text_model_dir(cfg.text_model)
    from transformers import AutoModel, AutoTokenizer

    try:
        model = AutoModel.from_pretrained(folder, use_safetensors=True, hidden_dropout_prob=cfg.dropout,
                                          attention_probs_dropout_prob=cfg.attention_dropout)
        tokenizer = AutoTokenizer.from_pretrained(folder)
    except (OSError, ValueError) as exc:
        raise TextModelError(f"recformer.text_model {cfg.text_model!r}: cannot load {folder}: {exc}") from exc
    if not getattr(tokenizer, "is_fast", False):
        raise TextModelError(f"recformer.text_model {cfg.text_model!r}: needs a fast tokenizer (tokenizer.json)")
    return model, tokenizer


def check_config(cfg: RecformerConfig, catalog: ItemCatalog) -> None:
    if catalog.texts is None:
        raise MissingItemTexts(
            "recformer reads item texts, but the catalogue has none: build it with "
            "read_catalog(items.parquet, with_texts=True) (its registry entry has needs_item_texts)")
    if len(catalog.texts) != catalog.n_items + 1:
        raise MissingItemTexts(f"recformer: catalogue has {len(catalog.texts)} texts for {catalog.n_items} items "
                               "(expected n_items + 1, index 0 for padding)")
    if cfg.pooling not in POOLINGS:
        raise ValueError(f"recformer.pooling must be one of {POOLINGS}, got {cfg.pooling!r}")
    if cfg.temperature <= 0 or cfg.max_tokens < 3 or cfg.max_item_tokens < 1 or cfg.history_items < 1:
        raise ValueError("recformer: temperature > 0, max_tokens >= 3, max_item_tokens >= 1 and history_items >= 1 "
                         f"are required, got {cfg.temperature}, {cfg.max_tokens}, {cfg.max_item_tokens}, "
                         f"{cfg.history_items}")


class TextEncoder(nn.Module):
    """A language model with Recformer's token-type and item-position embeddings; one vector per sequence."""

    def __init__(self, model: nn.Module, max_items: int, pooling: str):
        super().__init__()
        self.model = model
        width = model.config.hidden_size
        self.token_type = nn.Embedding(N_TOKEN_TYPES, width)
        self.item_position = nn.Embedding(max_items + 2, width)  # 0 special, 1..max_items, max_items + 1 padding
        nn.init.zeros_(self.token_type.weight)
        nn.init.zeros_(self.item_position.weight)
        self.pooling = pooling
        self.global_cls = model.config.model_type == "longformer"

    @property
    def width(self) -> int:
        return self.model.config.hidden_size

    def forward(self, batch: TextBatch) -> Tensor:
        """`[B, T]` inputs -> `[B, width]`."""
        return self.pool(self.hidden_states(batch), batch.mask)

    def hidden_states(self, batch: TextBatch) -> Tensor:
        """`[B, T]` inputs -> `[B, T, width]` token states."""
        words = self.model.get_input_embeddings()(batch.ids)
        embeds = words + self.token_type(batch.types) + self.item_position(batch.item_positions)
        extra = {"global_attention_mask": (torch.arange(batch.ids.shape[1], device=batch.ids.device) == 0)
                 .long().expand_as(batch.ids)} if self.global_cls else {}
        return self.model(inputs_embeds=embeds, attention_mask=batch.mask,
                          token_type_ids=torch.zeros_like(batch.ids), **extra).last_hidden_state

    def pool(self, hidden: Tensor, mask: Tensor) -> Tensor:
        if self.pooling == "cls":
            return hidden[:, 0]
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * weights).sum(1) / weights.sum(1).clamp_min(1.0)

    def freeze(self, layers: int, word_embeddings: bool) -> None:
        """No gradients for the word embeddings and/or the embedding block plus the lowest `layers` layers."""
        if word_embeddings:
            self.model.get_input_embeddings().requires_grad_(False)
        if layers <= 0:
            return
        stack = getattr(getattr(self.model, "encoder", None), "layer", None)
        if stack is None or layers > len(stack):
            have = "no encoder.layer" if stack is None else f"{len(stack)} layers"
            raise ValueError(f"recformer.freeze_layers={layers}, but the text model has {have}")
        self.model.embeddings.requires_grad_(False)
        for layer in stack[:layers]:
            layer.requires_grad_(False)


class Recformer(Backbone):

    def __init__(self, cfg: RecformerConfig, catalog: ItemCatalog, aug_dim: int = 0):
        check_config(cfg, catalog)
        model, tokenizer = load_text_model(cfg)
        width = model.config.hidden_size
        if cfg.max_tokens > model.config.max_position_embeddings:
            raise ValueError(f"recformer.max_tokens={cfg.max_tokens} exceeds the text model's "
                             f"{model.config.max_position_embeddings} positions")
        cfg = dataclasses.replace(cfg, dim=cfg.dim or width)
        super().__init__(cfg, catalog, aug_dim)
        self.items = None  # no id or category features: an item is its text
        self.text = TextEncoder(model, cfg.history_items, cfg.pooling)
        self.text.freeze(cfg.freeze_layers, cfg.freeze_word_embeddings)
        self.project = nn.Identity() if cfg.dim == width else nn.Linear(width, cfg.dim, bias=False)
        if isinstance(self.project, nn.Linear):
            nn.init.orthogonal_(self.project.weight)  # keeps cosine similarities roughly as the encoder has them
        self.inputs = SequenceBuilder(
            tokenize_items(catalog.texts, tokenizer, cfg.attribute_keys, cfg.max_item_tokens),
            tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id, cfg.max_tokens, cfg.history_items)
        self.mask_token_id = tokenizer.mask_token_id
        self.n_items = catalog.n_items
        self._table: Tensor | None = None
        self._table_key: tuple | None = None
        self._refresh = True

    # ---------------------------------------------------------------- the backbone interface

    def item_repr(self, item_ids: Tensor) -> Tensor:
        return self.project(self.item_table()[item_ids].to(self.text.token_type.weight.dtype))

    def recent(self, history: Tensor) -> Tensor:
        return history[:, -min(self.history_len, self.cfg.history_items):]

    def score(self, history: Tensor, candidates: Tensor) -> Tensor:
        user = self.user_repr(history)
        return F.cosine_similarity(user.unsqueeze(1).float(), candidates.float(), dim=-1) / self.cfg.temperature

    def user_repr(self, history: Tensor) -> Tensor:
        """`[B, L]` left-padded item ids -> `[B, dim]`: the encoded user text through the projection."""
        return self.project(self.text(self.inputs.users(history).to(self.device)))

    # ---------------------------------------------------------------- the cached item table

    @property
    def device(self) -> torch.device:
        return self.text.token_type.weight.device

    def train(self, mode: bool = True) -> Recformer:
        if mode:
            self._refresh = True  # a new training pass: re-encode the items if the weights moved since
        return super().train(mode)

    def weights_key(self) -> tuple:
        """Changes whenever any encoder weight is modified in place (optimizer, load_state_dict) or moved."""
        return tuple((p.data_ptr(), p._version) for p in self.text.parameters())

    def item_table(self) -> Tensor:
        """`[n_items + 1, width]` float32 encoder vectors of every item alone (row 0 zeros); see the module doc."""
        key = self.weights_key()
        outdated = self._table_key != key and (self._refresh or not self.training)
        if self._table is None or outdated or self._table.device != self.device:
            self._table, self._table_key = self.encode_items(), key
        if self.training:
            self._refresh = False
        return self._table

    @torch.no_grad()
    def encode_items(self) -> Tensor:
        """Every catalogue item encoded alone, in eval mode, batched by similar length."""
        was_training = self.text.training
        self.text.train(False)
        try:
            ids = list(range(1, self.n_items + 1))
            table = torch.zeros(self.n_items + 1, self.text.width, device=self.device)
            for rows in length_batches(self.inputs.lengths(ids), 4096, self.cfg.item_batch_tokens):
                chosen = [ids[r] for r in rows]
                table[chosen] = self.text(self.inputs.single_items(chosen).to(self.device)).float()
        finally:
            self.text.train(was_training)
        return table
