"""Read and check what the encode stage consumes: prepared items/users and the LLM generations.

Every problem is an error naming the file and the offending id; the only tolerated defects are the ones the
generation stage itself reports through `status`, which the vector policy handles and the report counts.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from ur4rec.encode.config import GENERATION_STATUSES, EncoderConfig
from ur4rec.encode.policy import Generations, classify
from ur4rec.encode.shards import brief
from ur4rec.encode.texts import item_texts, user_texts
from ur4rec.errors import UserError
from ur4rec.paths import DatasetPaths


class EncodeInputError(UserError, ValueError):
    """An input file is missing or breaks its contract; the message names the file and the id."""


def _text(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)


def _list_of(inner: Callable[[pa.DataType], bool]) -> Callable[[pa.DataType], bool]:
    return lambda t: (pa.types.is_list(t) or pa.types.is_large_list(t)) and inner(t.value_type)


# What each column read here must hold; a table of an older layout is refused by name, not half-read.
COLUMN_TYPES: dict[str, tuple[Callable[[pa.DataType], bool], str]] = {
    "item_id": (pa.types.is_integer, "integers"),
    "user_id": (pa.types.is_integer, "integers"),
    "title": (_text, "text"),
    "text": (_text, "text"),
    "answer": (_text, "text"),
    "status": (_text, "text"),
    "categories": (_list_of(_text), "lists of text"),
    "llm_history": (_list_of(pa.types.is_integer), "lists of integer item ids"),
}


@dataclass
class EncodeInputs:
    """Everything to encode, aligned by id: raw texts per item/user, LLM texts with their verdicts."""

    item_text: dict[int, str]
    user_text: dict[int, str]
    item_know: Generations
    user_pref: Generations
    item_answer: Generations  # the item knowledge as the model wrote it (no code-written title): its quality alone


def read_inputs(paths: DatasetPaths, cfg: EncoderConfig) -> EncodeInputs:
    items = _read(paths.prepared / "items.parquet", ["item_id", "title", "categories"], _rerun("prepare", paths))
    users = _read(paths.prepared / "users.parquet", ["user_id", "llm_history"], _rerun("prepare", paths))
    item_ids, user_ids = _unique_ids(items, "item_id"), _unique_ids(users, "user_id")
    raw_items = item_texts(item_ids, items["title"], items["categories"])
    raw_users = user_texts(user_ids, users["llm_history"], raw_items, source=str(users["__path__"]))
    knowledge = paths.llm / "item_knowledge.parquet"
    item_know = _generations(knowledge, "item_id", item_ids, cfg.bad_statuses, paths)
    # Outputs without an `answer` column (written by hand, or by another tool) are the model's text alone.
    has_answer = knowledge.exists() and "answer" in pq.read_schema(knowledge).names
    return EncodeInputs(
        item_text=raw_items,
        user_text=raw_users,
        item_know=item_know,
        user_pref=_generations(paths.llm / "user_preferences.parquet", "user_id", user_ids, cfg.bad_statuses, paths),
        item_answer=(_generations(knowledge, "item_id", item_ids, cfg.bad_statuses, paths, text="answer")
                     if has_answer else item_know),
    )


def _rerun(stage: str, paths: DatasetPaths) -> str:
    """The sentence that says which stage writes a file and how to run it again."""
    return (f"written by the {stage} stage; rerun it: `ur4rec {stage} --dataset {paths.name}` "
            f"(or `dvc repro {stage}@{paths.name}`)")


def _generations(
    path: Path, id_column: str, known_ids: Sequence[int], bad_statuses: Sequence[str], paths: DatasetPaths,
    text: str = "text",
) -> Generations:
    table = _read(path, [id_column, text, "status"], _rerun("generate", paths))
    ids = _unique_ids(table, id_column)
    known = set(known_ids)
    for i, status in zip(ids, table["status"]):
        if i not in known:
            raise EncodeInputError(f"{path}: {id_column} {i} is not in the prepared tables")
        if status not in GENERATION_STATUSES:
            raise EncodeInputError(
                f"{path}: {id_column} {i} has status {status!r}, not one of {list(GENERATION_STATUSES)}"
            )
    rows = {i: (t, status) for i, t, status in zip(ids, table[text], table["status"])}
    return classify(known_ids, rows, bad_statuses)


def _read(path: Path, columns: list[str], rerun: str) -> dict[str, Any]:
    """Columns of a Parquet file as Python lists (plus `__path__` for messages), each of its expected type."""
    if not path.exists():
        raise EncodeInputError(f"{path}: missing ({rerun})")
    try:
        schema = pq.read_schema(path)
        names = schema.names
    except (OSError, ValueError, pa.ArrowException) as exc:  # ValueError: also a damaged name that is not UTF-8
        raise EncodeInputError(f"{path}: not a readable Parquet file ({brief(exc)}; {rerun})") from exc
    absent = [c for c in columns if c not in names]
    if absent:
        raise EncodeInputError(f"{path}: missing column(s) {absent}, an older layout? ({rerun})")
    for column in columns:
        fits, expected = COLUMN_TYPES[column]
        if not fits(schema.field(column).type):
            raise EncodeInputError(
                f"{path}: column {column!r} holds {schema.field(column).type}, expected {expected} ({rerun})"
            )
    try:
        table = pq.read_table(path, columns=columns, page_checksum_verification=True)
        out: dict[str, Any] = {c: table.column(c).to_pylist() for c in columns}
    except (OSError, ValueError, pa.ArrowException) as exc:
        raise EncodeInputError(f"{path}: not a readable Parquet file ({brief(exc)}; {rerun})") from exc
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
