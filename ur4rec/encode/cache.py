"""Content-keyed encoder cache: sha256(encoder fingerprint, text) -> fp32 vector, shared by all datasets.

Re-running the stage after adding items (or with a new dataset that shares titles) encodes only texts this
exact encoder configuration has never seen. Storage under `data/cache/emb/<fingerprint[:16]>/`: append-only
parts, each a safetensors shard of vectors plus a Parquet file of its keys. A part's Parquet file is written
last, so a part without one (an interrupted run) is invisible; two processes never write the same file, so
concurrent stages need no lock. Deleting the folder only costs re-encoding.
"""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path
from typing import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from ur4rec.encode.shards import ShardReader, chunk_bounds, rows_per_shard, write_shard
from ur4rec.io import write_parquet


def text_key(fingerprint: str, text: str) -> bytes:
    """The cache key: the same text under another encoder configuration is another entry."""
    return hashlib.sha256(f"{fingerprint}\0{text}".encode("utf-8")).digest()


class EmbeddingCache:
    def __init__(self, root: Path, fingerprint: str, dim: int, shard_mb: float = 64):
        self.dir = Path(root) / fingerprint[:16]
        self.fingerprint = fingerprint
        self.dim = dim
        self.shard_mb = shard_mb
        self._reader = ShardReader(self.dir)
        self._where: dict[bytes, tuple[str, int]] = {}
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
            out[torch.tensor(positions)] = self._reader.rows(part, rows).float()
        return hit, out

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
        write_parquet(self.dir / f"{name}.parquet", pa.table({"key": pa.array(keys, pa.binary(32))}))
        for row, key in enumerate(keys):
            self._where[key] = (f"{name}.safetensors", row)

    def _load_index(self) -> None:
        for path in sorted(self.dir.glob("part-*.parquet")):
            shard = path.with_suffix(".safetensors").name
            if not (self.dir / shard).exists():
                continue  # keys without vectors: a part someone deleted by hand; its texts get re-encoded
            keys = pq.read_table(path, columns=["key"]).column("key").to_pylist()
            for row, key in enumerate(keys):
                self._where.setdefault(key, (shard, row))
