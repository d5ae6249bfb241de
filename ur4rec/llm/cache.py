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

A row is served only to a job whose key, model identity, sampling fingerprint, rendered prompt and output
schema it matches (`find`): the key alone is a claim the row makes about itself, and a shard from elsewhere (a
teammate's, one brought by `ur4rec cache pull`, one planted by hand) can claim any key. A row that contradicts
the job asking for its key sets its whole shard aside, with a warning naming it, and the lookup goes on to the
other rows of that key, so an answer of another model under the right key is never served and never hides
the right one. Rows of one key that disagree are never merged by `compact`.
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


IDENTITY = ("model", "sampling_fingerprint", "prompt", "schema_fingerprint")  # what a key stands for


def identity(row: dict[str, Any]) -> tuple:
    return tuple(row.get(name) for name in IDENTITY)


class LLMCache:
    """All shards of one cache folder, read into a dict on first use."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self._entries: dict[str, dict[str, Any]] | None = None
        self._others: dict[str, list[dict[str, Any]]] = {}  # rows of a key that disagree with its first one
        self._origin: dict[int, str] = {}  # id(row) -> the shard it was read from
        self._read: set[str] = set()  # shards read into memory
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
            self._set_aside(shard, f"{exc}")
            return []

    def _set_aside(self, shard: Path, why: str) -> None:
        """Move a shard out of the cache folder into the quarantine, with a warning naming it.

        On a cache that cannot be written (mounted read-only) the shard stays where it is and is only ignored.
        """
        if not shard.exists():  # another process compacted or set it aside meanwhile
            return
        try:
            self.quarantine.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(FileNotFoundError):
                os.replace(shard, self.quarantine / shard.name)
            where = f"moved it to {self.quarantine}"
        except OSError as exc:
            where = f"could not move it ({exc.strerror or exc}), so it is only ignored"
        log.warning("%s; %s, its outputs will be generated again", why, where)

    @property
    def entries(self) -> dict[str, dict[str, Any]]:
        """The first row read for each key (unchecked: `find` is what serves a job)."""
        if self._entries is None:
            self._entries, self._others, self._origin, self._read, self._duplicates = {}, {}, {}, set(), 0
            self._read_new()
        return self._entries

    def _read_new(self) -> None:
        assert self._entries is not None
        for shard in self.shards():
            if shard.name not in self._read:
                self._read.add(shard.name)
                for row in self._rows(shard):
                    self._add(row, shard.name)

    def _add(self, row: dict[str, Any], shard: str) -> None:
        assert self._entries is not None
        first = self._entries.get(row["key"])
        if first is None:
            # The first answer seen wins, so merging someone else's shards never changes ours.
            self._entries[row["key"]] = row
        elif identity(row) == identity(first) or any(identity(row) == identity(o) for o in self._others.get(row["key"], ())):
            self._duplicates += 1
            return
        else:  # another claim on the same key: kept, so `find` can tell which one the job asks for
            self._others.setdefault(row["key"], []).append(row)
        self._origin[id(row)] = shard

    def reload(self) -> None:
        self._entries = None

    def refresh(self) -> None:
        """Read the shards written since the last read (by other processes), keeping what is in memory."""
        if self._entries is None:
            self.entries
        else:
            self._read_new()

    def get(self, key: str) -> dict[str, Any] | None:
        """The first row of `key`, unchecked; jobs are served by `find`."""
        return self.entries.get(key)

    def find(self, key: str, model: str, sampling_fingerprint: str, prompt: str,
             schema_fingerprint: str | None) -> dict[str, Any] | None:
        """The row answering exactly this question, or None.

        A row under `key` that was written for another model, sampling, prompt or schema is not the answer: its
        shard is set aside (a warning names it) and the other rows of the key are tried.
        """
        want = (model, sampling_fingerprint, prompt, schema_fingerprint)
        while True:
            first = self.entries.get(key)
            if first is None:
                return None
            rows = (first, *self._others.get(key, ()))
            bad = next((r for r in rows if identity(r) != want), None)
            if bad is None:
                return first
            self._drop_shard(bad, key, want)  # also when a right row exists: the wrong one must not stay first

    def _drop_shard(self, row: dict[str, Any], key: str, want: tuple) -> None:
        """Set aside the shard of a row that contradicts its key, and forget every row read from it."""
        assert self._entries is not None
        shard = self._origin.get(id(row), "")
        differs = [name for name, got, wanted in zip(IDENTITY, identity(row), want) if got != wanted]
        self._set_aside(self.root / shard, f"LLM cache shard {self.root / shard} holds a row for key {key[:12]}... "
                        f"whose {', '.join(differs)} do not match that key (model {row.get('model')!r}, expected "
                        f"{want[0]!r}): it is not served")
        for k in [k for k, r in self._entries.items() if self._origin.get(id(r)) == shard]:
            rest = [r for r in self._others.pop(k, []) if self._origin.get(id(r)) != shard]
            del self._entries[k]
            if rest:
                self._entries[k] = rest[0]
                if rest[1:]:
                    self._others[k] = rest[1:]
        for k in list(self._others):
            self._others[k] = [r for r in self._others[k] if self._origin.get(id(r)) != shard]
            if not self._others[k]:
                del self._others[k]

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
            self._read.add(path.name)
            for r in records:
                self._add(_row(r), path.name)
        return path

    def compact(self, shards: Iterable[Path] | None = None) -> Path | None:
        """Merge shards (default: all) into one, keeping one row per key.

        The merged shard is written before the old ones are removed: a crash in between leaves duplicate
        rows, which readers already ignore, never a lost entry.
        """
        shards = list(self.shards() if shards is None else shards)
        if len(shards) < 2:
            return None
        rows = {shard: self._rows(shard) for shard in shards}
        claims: dict[str, set[tuple]] = {}
        for shard_rows in rows.values():
            for row in shard_rows:
                claims.setdefault(row["key"], set()).add(identity(row))
        # A shard holding a row that another row of the same key contradicts stays as it is: merged, its row
        # could no longer be set aside alone, and the wrong one would take the right ones with it.
        disputed = {k for k, ids in claims.items() if len(ids) > 1}
        held = [s for s, shard_rows in rows.items() if any(r["key"] in disputed for r in shard_rows)]
        if held:
            log.warning("%d LLM cache shard(s) hold rows that disagree with others about the same key (%s); they "
                        "are not merged: the next generation sets the wrong ones aside", len(held),
                        ", ".join(s.name for s in held[:3]))
        merge = [s for s in shards if s not in held and rows[s]]
        if len(merge) < 2:
            self.reload()
            return None
        seen: dict[str, dict[str, Any]] = {}
        for shard in merge:
            for row in rows[shard]:
                seen.setdefault(row["key"], row)
        path = self.root / _shard_name()
        write_shard(path, list(seen.values()))
        for shard in merge:
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
        """Record one run's hit counts. Informational only: a cache mounted read-only (a team's shared copy)
        still serves lookups, so a log that cannot be written is a warning, never a failed run."""
        line = json.dumps({"time": time.time(), **fields}, sort_keys=True) + "\n"
        try:
            self.lookup_log.parent.mkdir(parents=True, exist_ok=True)
            # One small O_APPEND write per run: concurrent runs interleave whole lines.
            with open(self.lookup_log, "a", encoding="utf-8") as fh:
                fh.write(line)
        except OSError as exc:
            log.warning("could not record this run's cache hits in %s (%s); the outputs are complete",
                        self.lookup_log, exc.strerror or exc)

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
