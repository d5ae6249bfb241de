"""The raw (non-LLM) texts the baselines encode: +BERT and the "w/o LLM" ablation.

An item is its title and categories, the same T(i) the paper's prompts show the LLM. A user is the items of
their `llm_history`: exactly the leak-free items the LLM saw for that user (they end before the user's first
target), so the raw baseline gets the same evidence as the LLM and nothing more. The history is written
newest first, so when the encoder's `max_length` truncates a long history it drops the oldest items.
"""

from __future__ import annotations

from typing import Iterable, Mapping, Sequence

from ur4rec.errors import UserError


class TextInputError(UserError, ValueError):
    """An input table refers to something that does not exist; the message names the table and ids."""


def item_text(title: str | None, categories: Sequence[str] | None) -> str:
    """`Title. Categories: A, B.`; either part may be missing, both missing gives ''."""
    title = (title or "").strip()
    cats = ", ".join(c.strip() for c in (categories or []) if c and c.strip())
    if not cats:
        return title
    return f"{title}. Categories: {cats}." if title else f"Categories: {cats}."


def item_texts(
    item_ids: Iterable[int], titles: Iterable[str | None], categories: Iterable[Sequence[str] | None]
) -> dict[int, str]:
    return {int(i): item_text(t, c) for i, t, c in zip(item_ids, titles, categories)}


def user_text(history: Sequence[int] | None, texts: Mapping[int, str]) -> str:
    """The user's history items, newest first, one item text after another."""
    return " ".join(texts[int(i)] for i in reversed(history or []) if texts[int(i)])


def user_texts(
    user_ids: Iterable[int], histories: Iterable[Sequence[int] | None], texts: Mapping[int, str], source: str = "users"
) -> dict[int, str]:
    out = {}
    for user, history in zip(user_ids, histories):
        unknown = [int(i) for i in history or [] if int(i) not in texts]
        if unknown:
            raise TextInputError(f"{source}: user {int(user)} has llm_history item {unknown[0]} that is not in items")
        out[int(user)] = user_text(history, texts)
    return out
