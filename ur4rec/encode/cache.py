"""Content-keyed encoder cache: sha256(encoder fingerprint, text) -> fp32 vector, shared by all datasets.

Re-running the stage after adding items (or with a new dataset that shares titles) encodes only texts this
exact encoder configuration has never seen. Storage under `data/cache/emb/<fingerprint[:16]>/`: append-only
parts, each a safetensors shard of vectors plus a Parquet file of its keys. A part's Parquet file is written
last, so a part without one (an interrupted run) is invisible; two processes never write the same file, so
concurrent stages need no lock. Deleting the folder only costs re-encoding.

A part found damaged (keys unreadable, vectors cut short or changed: shards carry a digest, checked when a
lookup first touches them) is moved to `<root>.quarantine/` with a warning naming it; its texts count as
misses and are encoded again. A cached vector is either the one written or not used at all.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import uuid
from pathlib import Path
from typing import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from ur4rec.encode.shards import ShardError, ShardReader, brief, chunk_bounds, rows_per_shard, write_shard
from ur4rec.io import write_parquet

log = logging.getLogger(__name__)
KEY = pa.binary(32)


def text_key(fingerprint: str, text: str) -> bytes:
    """The cache key: the same text under another encoder configuration is another entry."""
    return hashlib.sha256(f"{fingerprint}\0{text}".encode("utf-8")).digest()


class EmbeddingCache:
    def __init__(self, root: Path, fingerprint: str, dim: int, shard_mb: float = 64):
        self.dir = Path(root) / fingerprint[:16]
        self.quarantine = Path(root).with_name(Path(root).name + ".quarantine") / fingerprint[:16]
        self.fingerprint = fingerprint
        self.dim = dim
        self.shard_mb = shard_mb
        self._reader = ShardReader(self.dir)
        self._where: dict[bytes, tuple[str, int]] = {}
        self._sizes: dict[str, int] = {}  # rows each part's keys promise its shard holds
        self._checked: set[str] = set()
        self._load_index()

    def __len__(self) -> int:
        return len(self._where)

    def keys(self, texts: Sequence[str]) -> list[bytes]:
        return [text_key(self.fingerprint, t) for t in texts]

    def lookup(self, keys: Sequence[bytes]) -> tuple[np.ndarray, torch.Tensor]:
        """`(hit, vectors)`: `vectors[k]` is valid where `hit[k]`; misses are left as zeros."""
        hit = np.array([k in self._where for k in keys], dtype=bool)
        out = torch.zeros(len(keys), self.dim, dtype=torch.float32)
        by_part: dict[str, list[tuple[int, int]]] = {}
        for pos in np.flatnonzero(hit):
            part, row = self._where[keys[pos]]
            by_part.setdefault(part, []).append((int(pos), row))
        for part, pairs in by_part.items():
            positions, rows = zip(*pairs)
            if self._usable(part):
                out[torch.tensor(positions)] = self._reader.rows(part, rows).float()
            else:
                hit[list(positions)] = False
        return hit, out

    def _usable(self, shard: str) -> bool:
        """Whether a part's vectors are the ones written (checked once); a damaged part is set aside."""
        if shard not in self._checked:
            try:
                shape, promised = self._reader.shape(shard), (self._sizes[shard], self.dim)
                if shape != promised:
                    raise ShardError(f"{self.dir / shard}: shape {shape}, its keys promise {promised}")
            except ShardError as exc:
                self._set_aside(shard.removesuffix(".safetensors"), str(exc))
                return False
            self._checked.add(shard)
        return True

    def _set_aside(self, part: str, why: str) -> None:
        """Move a part's files to the quarantine folder and forget its keys: its texts get encoded again."""
        shard = f"{part}.safetensors"
        self._where = {k: v for k, v in self._where.items() if v[0] != shard}
        self.quarantine.mkdir(parents=True, exist_ok=True)
        for path in (self.dir / f"{part}.parquet", self.dir / shard):
            with contextlib.suppress(FileNotFoundError):  # another process may have moved it already
                os.replace(path, self.quarantine / path.name)
        log.warning("%s; moved %s to %s, its texts will be encoded again", why, part, self.quarantine)

    def add(self, keys: Sequence[bytes], vectors: torch.Tensor) -> None:
        """Persist new vectors as fresh parts (bounded in size); keys already cached are skipped."""
        fresh = [i for i, k in enumerate(keys) if k not in self._where]
        if not fresh:
            return
        keys = [keys[i] for i in fresh]
        vectors = vectors[torch.tensor(fresh)].float()
        for start, stop in chunk_bounds(len(keys), rows_per_shard(self.dim, torch.float32, self.shard_mb)):
            self._write_part(keys[start:stop], vectors[start:stop])

    def _write_part(self, keys: list[bytes], vectors: torch.Tensor) -> None:
        name = f"part-{uuid.uuid4().hex}"
        write_shard(self.dir / f"{name}.safetensors", vectors, {"fingerprint": self.fingerprint})
        write_parquet(self.dir / f"{name}.parquet", pa.table({"key": pa.array(keys, KEY)}), write_page_checksum=True)
        self._sizes[f"{name}.safetensors"] = len(keys)
        self._checked.add(f"{name}.safetensors")
        for row, key in enumerate(keys):
            self._where[key] = (f"{name}.safetensors", row)

    def _load_index(self) -> None:
        for path in sorted(self.dir.glob("part-*.parquet")):
            shard = path.with_suffix(".safetensors").name
            if not (self.dir / shard).exists():
                continue  # keys without vectors: a part someone deleted by hand; its texts get re-encoded
            try:
                keys = _read_keys(path)
            except (OSError, ValueError, pa.ArrowException) as exc:  # ValueError: also text that is not UTF-8
                self._set_aside(path.stem, f"{path}: unreadable keys ({brief(exc)})")
                continue
            self._sizes[shard] = len(keys)
            for row, key in enumerate(keys):
                self._where.setdefault(key, (shard, row))


def _read_keys(path: Path) -> list[bytes]:
    """A part's keys: 32-byte digests, none missing, or ValueError."""
    table = pq.read_table(path, page_checksum_verification=True)
    if table.column_names != ["key"] or table.schema.field("key").type != KEY or table.column("key").null_count:
        raise ValueError(f"expected one column of 32-byte keys, got {[f'{f.name}: {f.type}' for f in table.schema]}")
    return table.column("key").to_pylist()
