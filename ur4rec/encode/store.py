"""`data/<ds>/emb/`: the encoded vectors per kind, as training reads them.

Layout: `<kind>-NNNNN.safetensors` shards (rows sorted by id, bounded in size), `index.parquet` (`kind`, `id`,
`shard`, `row`) and `meta.json` (encoder fingerprint, dim, storage dtype, counts). `EmbeddingStore` reads it
memory-mapped: `.table(kind, size)` streams one shard at a time into the only full-size tensor it makes, so
building a training embedding table costs that table's RAM and nothing more.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from ur4rec.encode.shards import ShardReader, chunk_bounds, rows_per_shard, write_shard
from ur4rec.errors import UserError
from ur4rec.io import atomic_dir, write_json, write_parquet

KINDS = ("user_pref", "item_know", "user_text", "item_text")
INDEX_FILE = "index.parquet"
META_FILE = "meta.json"
FORMAT_VERSION = 1
_DTYPE_NAMES = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}
_NAME_DTYPES = {v: k for k, v in _DTYPE_NAMES.items()}


class StoreError(UserError, ValueError):
    """The store on disk is inconsistent or asked for something it does not hold; the message says what."""


@dataclass
class KindVectors:
    """The vectors of one kind: `vectors[k]` belongs to `ids[k]` (ids >= 1; 0 is padding)."""

    ids: np.ndarray
    vectors: torch.Tensor


def write_store(
    path: Path,
    kinds: Mapping[str, KindVectors],
    meta: Mapping[str, Any],
    dtype: torch.dtype = torch.float32,
    shard_mb: float = 64,
    extra_json: Mapping[str, Any] | None = None,
) -> None:
    """Write the whole store into a temporary folder, check it, then swap it in at `path` atomically."""
    dims = {kv.vectors.shape[1] for kv in kinds.values()}
    if len(dims) != 1:
        raise StoreError(f"{path}: all kinds must share one vector width, got {sorted(dims)}")
    (dim,) = dims
    with atomic_dir(path) as tmp:
        index, counts = [], {}
        for kind, kv in kinds.items():
            index.extend(_write_kind(tmp, kind, kv, dtype, rows_per_shard(dim, dtype, shard_mb)))
            counts[kind] = len(kv.ids)
        write_parquet(tmp / INDEX_FILE, pa.concat_tables(index) if index else _empty_index())
        layout = {"format": FORMAT_VERSION, "dim": dim, "dtype": _DTYPE_NAMES[dtype], "counts": counts}
        write_json(tmp / META_FILE, {**meta, **layout})
        for name, obj in (extra_json or {}).items():
            write_json(tmp / name, obj)
        EmbeddingStore(tmp).verify()


def _write_kind(root: Path, kind: str, kv: KindVectors, dtype: torch.dtype, per_shard: int) -> list[pa.Table]:
    ids = np.asarray(kv.ids, dtype=np.int64)
    if len(ids) != kv.vectors.shape[0]:
        raise StoreError(f"kind {kind!r}: {len(ids)} ids but {kv.vectors.shape[0]} vectors")
    if len(ids) and ids.min() < 1:
        raise StoreError(f"kind {kind!r}: id {int(ids.min())} is invalid (ids start at 1; 0 is padding)")
    order = np.argsort(ids, kind="stable")
    ids = ids[order]
    dupes = ids[1:][ids[1:] == ids[:-1]]
    if len(dupes):
        raise StoreError(f"kind {kind!r}: id {int(dupes[0])} appears more than once")
    vectors = kv.vectors[torch.from_numpy(order)].to(dtype)
    tables = []
    for number, (start, stop) in enumerate(chunk_bounds(len(ids), per_shard)):
        name = f"{kind}-{number:05d}.safetensors"
        write_shard(root / name, vectors[start:stop], {"kind": kind})
        tables.append(pa.table({
            "kind": pa.array([kind] * (stop - start), pa.string()),
            "id": pa.array(ids[start:stop], pa.int64()),
            "shard": pa.array([name] * (stop - start), pa.string()),
            "row": pa.array(np.arange(stop - start), pa.int64()),
        }))
    return tables


def _empty_index() -> pa.Table:
    return pa.table({"kind": pa.array([], pa.string()), "id": pa.array([], pa.int64()),
                     "shard": pa.array([], pa.string()), "row": pa.array([], pa.int64())})


@dataclass
class _KindIndex:
    ids: np.ndarray      # sorted ascending
    shards: np.ndarray   # code into EmbeddingStore._shard_names, per id
    rows: np.ndarray     # row inside that shard, per id


class EmbeddingStore:
    """Read access to `data/<ds>/emb/`; see the module docstring."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        meta_path, index_path = self.path / META_FILE, self.path / INDEX_FILE
        for required in (meta_path, index_path):
            if not required.exists():
                raise FileNotFoundError(f"{required}: missing; is {self.path} an encode-stage output?")
        self.meta: dict[str, Any] = json.loads(meta_path.read_text(encoding="utf-8"))
        self.dim = int(self.meta["dim"])
        self.dtype = _NAME_DTYPES[self.meta["dtype"]]
        self._reader = ShardReader(self.path)
        self._shard_names, self._kinds = _load_index(index_path)
        for kind in self.meta.get("counts", {}):  # a kind with no vectors has no index rows
            self._kinds.setdefault(kind, _KindIndex(*(np.zeros(0, np.int64) for _ in range(3))))

    @property
    def fingerprint(self) -> str:
        return self.meta.get("encoder", {}).get("fingerprint", "")

    @property
    def kinds(self) -> list[str]:
        return sorted(self._kinds)

    def ids(self, kind: str) -> np.ndarray:
        return self._kind(kind).ids.copy()

    def get(
        self, kind: str, ids: Sequence[int] | np.ndarray | torch.Tensor, dtype: torch.dtype | None = torch.float32
    ) -> torch.Tensor:
        """Vectors of `ids` in the order given (`dtype=None`: as stored); an id the store lacks is an error."""
        index, dtype = self._kind(kind), dtype or self.dtype
        want = np.asarray(ids.cpu() if isinstance(ids, torch.Tensor) else ids, dtype=np.int64).reshape(-1)
        pos = np.minimum(np.searchsorted(index.ids, want), max(len(index.ids) - 1, 0))
        found = index.ids[pos] == want if len(index.ids) else np.zeros(len(want), bool)
        if not found.all():
            raise StoreError(f"{self.path}: kind {kind!r} has no id {int(want[~found][0])}")
        out = torch.empty(len(want), self.dim, dtype=dtype)
        for code in np.unique(index.shards[pos]):
            sel = np.flatnonzero(index.shards[pos] == code)
            block = self._reader.rows(self._shard_names[code], index.rows[pos[sel]])
            out[torch.from_numpy(sel)] = block.to(dtype)
        return out

    def table(self, kind: str, size: int | None = None, dtype: torch.dtype | None = torch.float32) -> torch.Tensor:
        """`[size, dim]` with row = id, zeros where the store has no vector (row 0, the padding id, always).

        `size` defaults to the largest id + 1; `dtype=None` keeps the stored dtype (fp16 storage: half the RAM).
        """
        index, dtype = self._kind(kind), dtype or self.dtype
        top = int(index.ids[-1]) if len(index.ids) else 0
        size = top + 1 if size is None else size
        if top >= size:
            raise StoreError(f"{self.path}: kind {kind!r} holds id {top}, which does not fit a table of size {size}")
        out = torch.zeros(size, self.dim, dtype=dtype)
        for code in np.unique(index.shards):
            sel = np.flatnonzero(index.shards == code)
            block = self._reader.rows(self._shard_names[code], index.rows[sel])
            out[torch.from_numpy(index.ids[sel])] = block.to(dtype)
        return out

    def verify(self) -> None:
        """Check the index against the shards and meta.json: every row of every shard indexed exactly once."""
        for kind, index in self._kinds.items():
            expected = self.meta.get("counts", {}).get(kind)
            if expected is not None and expected != len(index.ids):
                raise StoreError(
                    f"{self.path}: meta.json counts {expected} {kind!r} vectors, the index {len(index.ids)}"
                )
            if len(np.unique(index.ids)) != len(index.ids):
                raise StoreError(f"{self.path}: kind {kind!r} indexes an id twice")
        for code, name in enumerate(self._shard_names):
            rows = np.concatenate([ix.rows[ix.shards == code] for ix in self._kinds.values()])
            shape = self._reader.shape(name)
            if len(shape) != 2 or shape[1] != self.dim:
                raise StoreError(f"{self.path / name}: shape {shape} does not match dim {self.dim}")
            if not np.array_equal(np.sort(rows), np.arange(shape[0])):
                raise StoreError(f"{self.path / name}: index rows do not cover its {shape[0]} rows exactly once")

    def _kind(self, kind: str) -> _KindIndex:
        if kind not in self._kinds:
            raise StoreError(f"{self.path}: no kind {kind!r} (has {self.kinds})")
        return self._kinds[kind]


def _load_index(path: Path) -> tuple[list[str], dict[str, _KindIndex]]:
    table = pq.read_table(path, columns=["kind", "id", "shard", "row"])
    kinds_col = table.column("kind").to_numpy(zero_copy_only=False).astype(str)
    shards = table.column("shard").to_numpy(zero_copy_only=False).astype(str)
    shard_names, shard_codes = np.unique(shards, return_inverse=True)
    ids = table.column("id").to_numpy()
    rows = table.column("row").to_numpy()
    out = {}
    for kind in np.unique(kinds_col):
        sel = np.flatnonzero(kinds_col == kind)
        order = sel[np.argsort(ids[sel], kind="stable")]
        out[str(kind)] = _KindIndex(
            ids[order].astype(np.int64), shard_codes[order].astype(np.int64), rows[order].astype(np.int64)
        )
    return [str(n) for n in shard_names], out
