"""The normalised raw schema every loader returns, and the bad-input policy every loader shares.

Loaders keep raw ids as strings; dense ids are assigned later, after filtering, so that they are contiguous.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Literal

import polars as pl

from ur4rec.errors import UserError

BadLinePolicy = Literal["error", "skip"]

ITEMS_SCHEMA = {"raw_id": pl.String, "title": pl.String, "categories": pl.List(pl.String), "attributes": pl.String}
USERS_SCHEMA = {"raw_id": pl.String, "gender": pl.String, "age": pl.String, "occupation": pl.String}
INTERACTIONS_SCHEMA = {
    "user": pl.String,
    "item": pl.String,
    "timestamp": pl.Int64,
    "rating": pl.Float64,
    # Where the raw record came from, so checks after loading can still name file and line.
    "file": pl.Categorical,
    "line": pl.Int64,
}


class DataFormatError(UserError, ValueError):
    """Raw input that cannot be read as its format says; the message names the file and line."""


class CatalogueTooSmall(UserError, ValueError):
    """Not enough distinct never-seen items to draw a user's negatives."""


# Half of a UTF-16 pair (`\ud83d` alone, as scraped JSON has it) is no character: UTF-8, Parquet and polars
# cannot hold it. In free text it becomes U+FFFD; an id holding one is no id.
LONE_SURROGATE = re.compile("[\ud800-\udfff]")
BRIEF_CHARS = 200  # parsers quote the offending input, which can be a whole record


def brief(exc: BaseException) -> str:
    """The first line of an exception's message, shortened: what a one-line error may quote of a parser's
    complaint (polars, pyarrow and csv add hints on further lines, some naming options that are not ours)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = lines[0] if lines else type(exc).__name__
    return text if len(text) <= BRIEF_CHARS else text[: BRIEF_CHARS - 3] + "..."


def where(path: Path | str, line: int | None = None) -> str:
    return f"{path}:{line}" if line is not None else str(path)


@dataclass
class BadLines:
    """Applies the `prepare.on_bad_line` policy: raise naming file and line, or count the skip by reason."""

    policy: BadLinePolicy = "error"
    counts: Counter = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.policy not in ("error", "skip"):
            raise ValueError(f"prepare.on_bad_line must be 'error' or 'skip', got {self.policy!r}")

    def report(self, reason: str, location: str, detail: str = "", count: int = 1) -> None:
        """One bad record (or `count` of the same kind); `location` is `file:line`."""
        detail = " ".join(detail.split())  # one line, whatever a parser put in it
        message = f"{location}: {reason}" + (f" ({detail})" if detail else "")
        if self.policy == "error":
            raise DataFormatError(message + "; fix the file or set prepare.on_bad_line=skip to count and skip it")
        self.counts[reason] += count
        self.examples.setdefault(reason, message)

    def report_many(self, reason: str, locations: Iterable[str], detail: str = "") -> None:
        """Bad records found by a vectorised check: the first is named, all are counted."""
        locations = list(locations)
        if not locations:
            return
        more = f"; {len(locations) - 1} more like it" if len(locations) > 1 else ""
        self.report(reason, locations[0], detail + more if detail or more else "", count=len(locations))

    def require_rows(self, frame: pl.DataFrame, path: Path, what: str) -> pl.DataFrame:
        """`frame` unchanged, or an error naming `path` when nothing usable is left in it: an empty file, or
        one whose every line was bad (skipped lines leave nothing to prepare, and naming the file says where)."""
        if frame.height:
            return frame
        skipped = f"; lines skipped so far: {dict(sorted(self.counts.items()))}" if self.counts else ""
        raise DataFormatError(f"{path}: no usable {what} in the file{skipped}; check it, or fetch it again")


@dataclass
class RawDataset:
    """What a loader returns: items, users and interactions with raw string ids, plus loader notes.

    `notes` holds counts a loader wants in stats.json (e.g. titles that needed a fallback).
    """

    items: pl.DataFrame
    users: pl.DataFrame
    interactions: pl.DataFrame
    items_complete: bool = True  # True: an interaction with an item missing from `items` is bad input
    notes: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.items = conform(self.items, ITEMS_SCHEMA)
        self.users = conform(self.users, USERS_SCHEMA)
        self.interactions = conform(self.interactions, INTERACTIONS_SCHEMA)


def conform(frame: pl.DataFrame, schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """Select the schema's columns in order with its dtypes; absent optional columns become null."""
    cols = []
    for name, dtype in schema.items():
        if name in frame.columns:
            cols.append(pl.col(name).cast(dtype))
        else:
            cols.append(pl.lit(None, dtype=dtype).alias(name))
    return frame.select(cols) if frame.height or frame.columns else pl.DataFrame(schema=schema)


def empty_users() -> pl.DataFrame:
    return pl.DataFrame(schema=USERS_SCHEMA)


def attributes_json(values: dict[str, Any]) -> str:
    """Extra item fields as a compact JSON object, empty values dropped, keys sorted (stable bytes)."""
    kept = {k: v for k, v in values.items() if v not in (None, "", [], {})}
    return LONE_SURROGATE.sub("\ufffd", json.dumps(kept, ensure_ascii=False, sort_keys=True, default=str))
