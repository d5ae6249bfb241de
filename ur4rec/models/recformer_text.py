"""Recformer's text inputs: items as "key value" attribute tokens, users as their items' tokens, most recent first.

Each token carries, besides its id, a token type (0 special, 1 attribute key, 2 attribute value, 3 padding)
and an item position (0 for the special tokens, k for the user's k-th most recent item, `max_items + 1` for
padding), the two embeddings Recformer adds to a language model's own token and position embeddings.

The catalogue gives each item one flat text (`title X categories A, B release date D`), so the keys are found
again by name: `attribute_keys` lists the names the catalogue writes, and the keys found must appear in the
order the catalogue writes them (title, categories, then the other attributes alphabetically), which keeps a
title like "the price of salt" from being split at "price". Tokens of an unknown key read as value tokens,
which only loses the key/value hint.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, fields

import torch
from torch import Tensor

SPECIAL, KEY, VALUE, PAD_TYPE = 0, 1, 2, 3
N_TOKEN_TYPES = 4

LEADING_KEYS = ("title", "categories")  # written first, in this order; the rest follow sorted by name


def key_order(keys: Sequence[str]) -> dict[str, int]:
    """Rank of each key in the order the catalogue writes them (attributes are sorted by their field name)."""
    rest = sorted((k for k in keys if k not in LEADING_KEYS), key=lambda k: k.replace(" ", "_"))
    leading = [k for k in LEADING_KEYS if k in keys]
    return {k: i for i, k in enumerate([*leading, *rest])}


def key_spans(text: str, order: dict[str, int]) -> list[tuple[int, int]]:
    """Character spans of the attribute keys in `text`: whole words (longest name first), keeping the longest
    run of matches whose ranks increase; between equally long runs, the one of smaller ranks (so in
    `title the price of salt categories drama` the keys are title and categories, not title and price)."""
    if not order:
        return []
    names = sorted(order, key=len, reverse=True)
    pattern = re.compile(r"(?<!\S)(" + "|".join(map(re.escape, names)) + r")(?=\s)")
    matches = [(m.span(1), order[m.group(1)]) for m in pattern.finditer(text)]
    best: list[tuple[int, int, int]] = []  # per match: (run length, -sum of ranks, previous match or -1)
    for j, (_, rank) in enumerate(matches):
        runs = [(best[i][0] + 1, best[i][1] - rank, i) for i in range(j) if matches[i][1] < rank]
        best.append(max(runs, default=(1, -rank, -1), key=lambda run: run[:2]))
    spans, j = [], max(range(len(best)), key=lambda i: best[i][:2], default=-1)
    while j >= 0:
        spans.append(matches[j][0])
        j = best[j][2]
    return spans[::-1]


@dataclass(frozen=True)
class ItemTokens:
    """Token ids and types of every catalogue item (index = item id; item 0 has none)."""

    ids: tuple[tuple[int, ...], ...]
    types: tuple[tuple[int, ...], ...]


def tokenize_items(texts: Sequence[str], tokenizer, keys: Sequence[str], max_item_tokens: int) -> ItemTokens:
    """Tokenise every item text once (no special tokens), typing each token as key or value by its offsets."""
    enc = tokenizer(list(texts), add_special_tokens=False, return_offsets_mapping=True)
    order = key_order(keys)
    ids, types = [], []
    for text, token_ids, offsets in zip(texts, enc["input_ids"], enc["offset_mapping"]):
        spans = key_spans(text, order)
        kinds = [KEY if any(s <= start and end <= e for s, e in spans) else VALUE for start, end in offsets]
        ids.append(tuple(token_ids[:max_item_tokens]))
        types.append(tuple(kinds[:max_item_tokens]))
    return ItemTokens(tuple(ids), tuple(types))


@dataclass
class TextBatch:
    """Right-padded encoder inputs, all `[B, T]`: token ids, token types, item positions, attention mask."""

    ids: Tensor
    types: Tensor
    item_positions: Tensor
    mask: Tensor

    def to(self, device: torch.device | str) -> TextBatch:
        return TextBatch(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})


@dataclass(frozen=True)
class SequenceBuilder:
    """Turns item ids into encoder inputs: `[CLS] item_1 ... item_k [SEP]`, item_1 the most recent."""

    items: ItemTokens
    cls_id: int
    sep_id: int
    pad_id: int
    max_tokens: int  # per sequence, [CLS] and [SEP] included
    max_items: int   # items per user sequence; item positions run 1..max_items

    @property
    def pad_position(self) -> int:
        return self.max_items + 1

    def users(self, history: Tensor) -> TextBatch:
        """Left-padded `[B, L]` histories (oldest -> newest) -> one sequence per row, newest item first,
        cut to `max_items` items and `max_tokens` tokens (the oldest items are the ones cut)."""
        rows = []
        for row in history.tolist():
            recent = [i for i in reversed(row) if i > 0][: self.max_items]
            rows.append(self.sequence(recent))
        return self.pad(rows)

    def single_items(self, item_ids: Sequence[int]) -> TextBatch:
        """Each item alone, as a one-item sequence (how Recformer encodes the candidates)."""
        return self.pad([self.sequence([i]) for i in item_ids])

    def sequence(self, item_ids: Sequence[int]) -> tuple[list[int], list[int], list[int]]:
        budget = self.max_tokens - 2
        ids, types, positions = [self.cls_id], [SPECIAL], [0]
        for k, item in enumerate(item_ids, start=1):
            if budget <= 0:
                break
            tokens = self.items.ids[item][:budget]
            ids += tokens
            types += self.items.types[item][:budget]
            positions += [k] * len(tokens)
            budget -= len(tokens)
        return ids + [self.sep_id], types + [SPECIAL], positions + [0]

    def pad(self, rows: list[tuple[list[int], list[int], list[int]]]) -> TextBatch:
        width = max(len(ids) for ids, _, _ in rows)
        out = {name: torch.full((len(rows), width), fill, dtype=torch.long)
               for name, fill in (("ids", self.pad_id), ("types", PAD_TYPE), ("item_positions", self.pad_position),
                                  ("mask", 0))}
        for r, (ids, types, positions) in enumerate(rows):
            n = len(ids)
            out["ids"][r, :n] = torch.tensor(ids)
            out["types"][r, :n] = torch.tensor(types)
            out["item_positions"][r, :n] = torch.tensor(positions)
            out["mask"][r, :n] = 1
        return TextBatch(**out)

    def lengths(self, item_ids: Sequence[int]) -> list[int]:
        """Token count of each item's one-item sequence (to batch items of similar length)."""
        return [min(len(self.items.ids[i]), self.max_tokens - 2) + 2 for i in item_ids]
