"""Read and check what the encode stage consumes: prepared items/users and the LLM generations.

Every problem is an error naming the file and the offending id; the only tolerated defects are the ones the
generation stage itself reports through `status`, which the vector policy handles and the report counts.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import pyarrow.parquet as pq

from ur4rec.encode.config import GENERATION_STATUSES, EncoderConfig
from ur4rec.encode.policy import Generations, classify
from ur4rec.encode.texts import item_texts, user_texts
from ur4rec.errors import UserError
from ur4rec.paths import DatasetPaths


class EncodeInputError(UserError, ValueError):
    """An input file is missing or breaks its contract; the message names the file and the id."""


@dataclass
class EncodeInputs:
    """Everything to encode, aligned by id: raw texts per item/user, LLM texts with their verdicts."""

    item_text: dict[int, str]
    user_text: dict[int, str]
    item_know: Generations
    user_pref: Generations


def read_inputs(paths: DatasetPaths, cfg: EncoderConfig) -> EncodeInputs:
    items = _read(paths.prepared / "items.parquet", ["item_id", "title", "categories"], "prepare")
    users = _read(paths.prepared / "users.parquet", ["user_id", "llm_history"], "prepare")
    item_ids, user_ids = _unique_ids(items, "item_id"), _unique_ids(users, "user_id")
    raw_items = item_texts(item_ids, items["title"], items["categories"])
    raw_users = user_texts(user_ids, users["llm_history"], raw_items, source=str(users["__path__"]))
    return EncodeInputs(
        item_text=raw_items,
        user_text=raw_users,
        item_know=_generations(paths.llm / "item_knowledge.parquet", "item_id", item_ids, cfg.bad_statuses),
        user_pref=_generations(paths.llm / "user_preferences.parquet", "user_id", user_ids, cfg.bad_statuses),
    )


def _generations(path: Path, id_column: str, known_ids: Sequence[int], bad_statuses: Sequence[str]) -> Generations:
    table = _read(path, [id_column, "text", "status"], "generate")
    ids = _unique_ids(table, id_column)
    known = set(known_ids)
    for i, status in zip(ids, table["status"]):
        if i not in known:
            raise EncodeInputError(f"{path}: {id_column} {i} is not in the prepared tables")
        if status not in GENERATION_STATUSES:
            raise EncodeInputError(
                f"{path}: {id_column} {i} has status {status!r}, not one of {list(GENERATION_STATUSES)}"
            )
    rows = {i: (text, status) for i, text, status in zip(ids, table["text"], table["status"])}
    return classify(known_ids, rows, bad_statuses)


def _read(path: Path, columns: list[str], producer: str) -> dict[str, Any]:
    """Columns of a Parquet file as Python lists (plus `__path__` for messages)."""
    if not path.exists():
        raise EncodeInputError(f"{path}: missing (written by the {producer} stage; run it first)")
    names = set(pq.read_schema(path).names)
    absent = [c for c in columns if c not in names]
    if absent:
        raise EncodeInputError(f"{path}: missing column(s) {absent}")
    table = pq.read_table(path, columns=columns)
    out: dict[str, Any] = {c: table.column(c).to_pylist() for c in columns}
    out["__path__"] = path
    return out


def _unique_ids(table: dict[str, Any], column: str) -> list[int]:
    ids = table[column]
    if any(i is None for i in ids):
        raise EncodeInputError(f"{table['__path__']}: null {column} in row {ids.index(None)}")
    dupes = [i for i, n in Counter(ids).items() if n > 1]
    if dupes:
        raise EncodeInputError(f"{table['__path__']}: {column} {dupes[0]} appears {Counter(ids)[dupes[0]]} times")
    return [int(i) for i in ids]
