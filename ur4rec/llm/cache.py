"""Content-addressed store of LLM outputs, shared by every dataset, experiment and team member.

An entry's key is sha256(model identity, sampling fingerprint, rendered prompt[, output schema]): the same
question to the same model with the same settings is answered once, whatever dataset or run asks it. Free
text has no schema part, so its keys are those of caches written before structured outputs existed. Entries live in a
modest number of append-only Parquet shards under `data/cache/llm/`: each flush writes one new shard
atomically (temp file + rename), so a crash or kill -9 loses at most the unflushed outputs and never leaves
a half-written shard. Shard names are unique (time + random), so two processes, or two people's caches
merged through a DVC remote, never overwrite each other: the cache is simply the union of its shards.
`compact` merges shards when they pile up.

A shard damaged on disk or in transfer (cut short, bytes changed: shards carry page checksums) or written
with another schema is read whole or not at all: it is moved aside to `<cache>.quarantine/` with a warning
naming it, and its outputs are generated again. A cache can always be rebuilt; a half-read one cannot be
trusted.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import pyarrow as pa
import pyarrow.parquet as pq

from ur4rec.errors import UserError
from ur4rec.io import write_parquet
from ur4rec.llm.config import LLMConfig
from ur4rec.paths import DATA_ROOT, cache_dir

log = logging.getLogger(__name__)

SCHEMA = pa.schema(
    [
        ("key", pa.string()),
        ("model", pa.string()),
        ("sampling_fingerprint", pa.string()),
        ("prompt", pa.string()),
        ("text", pa.string()),
        ("raw", pa.string()),  # structured outputs: the JSON as generated (`text` is its rendering); else null
        ("schema_fingerprint", pa.string()),  # structured outputs: OutputSchema.fingerprint; else null
        ("n_prompt_tokens", pa.int32()),
        ("n_output_tokens", pa.int32()),
        ("finish_reason", pa.string()),
        ("status", pa.string()),
        ("attempts", pa.int16()),
        ("seed", pa.int64()),
        ("created_at", pa.float64()),
    ]
)


ADDED_LATER = ("raw", "schema_fingerprint")


class CacheError(UserError, RuntimeError):
    """A shard cannot be read; the message names it."""


def cache_key(model_identity: str, sampling_fingerprint: str, prompt: str, schema: str = "") -> str:
    """`schema`: the output constraint (`OutputSchema.key_part`), empty for free text."""
    parts = [model_identity, sampling_fingerprint, prompt, *([schema] if schema else [])]
    blob = json.dumps(parts, ensure_ascii=False).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()


@dataclass(frozen=True)
class CacheStats:
    entries: int
    shards: int
    bytes: int
    duplicates: int
    by_status: dict[str, int]
    by_model: dict[str, int]


class LLMCache:
    """All shards of one cache folder, read into a dict on first use."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self._entries: dict[str, dict[str, Any]] | None = None
        self._duplicates = 0

    # ---------------------------------------------------------------- reading
    def shards(self) -> list[Path]:
        # Temp files of in-flight writes start with '.', so they are never read.
        return sorted(p for p in self.root.glob("*.parquet") if not p.name.startswith("."))

    @property
    def quarantine(self) -> Path:
        """Where unreadable shards are set aside: beside the cache folder, so they are no longer part of it."""
        return self.root.with_name(self.root.name + ".quarantine")

    def _rows(self, shard: Path) -> list[dict[str, Any]]:
        """A shard's rows, or none (with a warning) when it cannot be read whole: it is moved aside."""
        try:
            return read_shard(shard)
        except CacheError as exc:
            if shard.exists():  # else another process compacted or set it aside meanwhile
                self.quarantine.mkdir(parents=True, exist_ok=True)
                with contextlib.suppress(FileNotFoundError):
                    os.replace(shard, self.quarantine / shard.name)
                log.warning("%s; moved it to %s, its outputs will be generated again", exc, self.quarantine)
            return []

    @property
    def entries(self) -> dict[str, dict[str, Any]]:
        if self._entries is None:
            self._entries, self._duplicates = {}, 0
            for shard in self.shards():
                for row in self._rows(shard):
                    # The first answer seen wins, so merging someone else's shards never changes ours.
                    if row["key"] in self._entries:
                        self._duplicates += 1
                    else:
                        self._entries[row["key"]] = row
        return self._entries

    def reload(self) -> None:
        self._entries = None

    def get(self, key: str) -> dict[str, Any] | None:
        return self.entries.get(key)

    def __contains__(self, key: str) -> bool:
        return key in self.entries

    def __len__(self) -> int:
        return len(self.entries)

    # ---------------------------------------------------------------- writing
    def append(self, records: list[dict[str, Any]]) -> Path | None:
        """Write records as one new shard (atomically) and add them to the in-memory view.

        A cache that has not been read yet stays unread (its next read finds the new shard): a Ray engine
        actor writes into the shared cache without loading all of it.
        """
        if not records:
            return None
        path = self.root / _shard_name()
        write_shard(path, [_row(r) for r in records])
        if self._entries is not None:
            for r in records:
                self._entries.setdefault(r["key"], _row(r))
        return path

    def compact(self, shards: Iterable[Path] | None = None) -> Path | None:
        """Merge shards (default: all) into one, keeping one row per key.

        The merged shard is written before the old ones are removed: a crash in between leaves duplicate
        rows, which readers already ignore, never a lost entry.
        """
        shards = list(self.shards() if shards is None else shards)
        if len(shards) < 2:
            return None
        seen: dict[str, dict[str, Any]] = {}
        for shard in shards:
            for row in self._rows(shard):
                seen.setdefault(row["key"], row)
        path = self.root / _shard_name()
        write_shard(path, list(seen.values()))
        for shard in shards:
            shard.unlink(missing_ok=True)
        self.reload()
        return path

    def stats(self) -> CacheStats:
        entries = self.entries
        by_status: dict[str, int] = {}
        by_model: dict[str, int] = {}
        for row in entries.values():
            by_status[row["status"]] = by_status.get(row["status"], 0) + 1
            by_model[row["model"]] = by_model.get(row["model"], 0) + 1
        return CacheStats(
            entries=len(entries),
            shards=len(self.shards()),
            bytes=sum(p.stat().st_size for p in self.shards()),
            duplicates=self._duplicates,
            by_status=dict(sorted(by_status.items())),
            by_model=dict(sorted(by_model.items())),
        )

    # ---------------------------------------------------------------- lookup log (hit rates)
    @property
    def lookup_log(self) -> Path:
        """Kept beside the cache folder, not in it: it is local bookkeeping, not shared content."""
        return self.root.with_name(self.root.name + ".lookups.jsonl")

    def log_lookups(self, **fields: Any) -> None:
        self.lookup_log.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps({"time": time.time(), **fields}, sort_keys=True) + "\n"
        # One small O_APPEND write per run: concurrent runs interleave whole lines.
        with open(self.lookup_log, "a", encoding="utf-8") as fh:
            fh.write(line)

    def lookups(self) -> list[dict[str, Any]]:
        if not self.lookup_log.exists():
            return []
        out = []
        for line in self.lookup_log.read_text(encoding="utf-8").splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line cut by a crash; the log is informational only
        return out


def write_shard(path: Path, rows: list[dict[str, Any]]) -> None:
    """One shard, atomically, with page checksums so that damage is found when it is read."""
    write_parquet(path, pa.Table.from_pylist(rows, schema=SCHEMA), write_page_checksum=True)


def read_shard(path: Path) -> list[dict[str, Any]]:
    """Every row of a shard, or CacheError naming it: cut short, changed on disk, or of another schema."""
    try:
        return _conformed(pq.read_table(path, page_checksum_verification=True), path).to_pylist()
    except (OSError, ValueError, pa.ArrowException) as exc:  # ValueError: also a damaged name that is not UTF-8
        raise CacheError(f"LLM cache shard {path} is unreadable ({_brief(exc)})") from exc


def _conformed(table: pa.Table, path: Path) -> pa.Table:
    # Shards written before structured outputs existed lack their columns: those read as null.
    for name in ADDED_LATER:
        if name not in table.column_names:
            table = table.append_column(name, pa.nulls(table.num_rows, SCHEMA.field(name).type))
    missing = [name for name in SCHEMA.names if name not in table.column_names]
    if missing:
        raise CacheError(f"LLM cache shard {path} lacks column(s) {missing}")
    try:
        table = table.select(SCHEMA.names).cast(SCHEMA)
    except (pa.ArrowException, ValueError) as exc:
        raise CacheError(f"LLM cache shard {path} has columns of other types ({_brief(exc)})") from exc
    if table.column("key").null_count:
        raise CacheError(f"LLM cache shard {path} has rows without a key")
    return table


def _brief(exc: BaseException) -> str:
    """The first line of a reader's complaint, for a one-line message."""
    return next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)


def llm_cache(cfg: LLMConfig, root: Path = DATA_ROOT) -> LLMCache:
    """The cache folder `llm.cache_dir` names (default data/cache/llm under `root`)."""
    return LLMCache(Path(cfg.cache_dir) if cfg.cache_dir else cache_dir("llm", root))


def _row(record: dict[str, Any]) -> dict[str, Any]:
    return {name: record.get(name) for name in SCHEMA.names}


def _shard_name() -> str:
    """Unique, and sorting by name sorts by creation time (to the microsecond) so `first seen` is stable."""
    now = time.time()
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now)) + f"{int(now % 1 * 1e6):06d}"
    return f"{stamp}-{os.getpid()}-{uuid.uuid4().hex[:8]}.parquet"
