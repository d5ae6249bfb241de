"""`data/<ds>/emb/`: the encoded vectors per kind, as training reads them.

Layout: `<kind>-NNNNN.safetensors` shards (rows sorted by id, bounded in size), `index.parquet` (`kind`, `id`,
`shard`, `row`) and `meta.json` (encoder fingerprint, dim, storage dtype, counts). `EmbeddingStore` reads it
memory-mapped: `.table(kind, size)` streams one shard at a time into the only full-size tensor it makes, so
building a training embedding table costs that table's RAM and nothing more.

Opening a store checks all of it (meta.json, the index, every shard's size and digest) before a vector is
read: a store cut short, changed by hand or written by another version is refused as a whole, with a
`StoreError` naming the file and the command that rebuilds it. Nothing half-read goes into training.
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

from ur4rec.encode.shards import ShardError, ShardReader, brief, chunk_bounds, rows_per_shard, write_shard
from ur4rec.errors import UserError
from ur4rec.io import atomic_dir, write_json, write_parquet

KINDS = ("user_pref", "item_know", "user_text", "item_text", "item_answer")  # item_answer: item_know without its title
INDEX_FILE = "index.parquet"
META_FILE = "meta.json"
FORMAT_VERSION = 1
_DTYPE_NAMES = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}
_NAME_DTYPES = {v: k for k, v in _DTYPE_NAMES.items()}
INDEX_TYPES = {"kind": pa.string(), "id": pa.int64(), "shard": pa.string(), "row": pa.int64()}


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
        write_parquet(tmp / INDEX_FILE, pa.concat_tables(index) if index else _empty_index(), write_page_checksum=True)
        layout = {"format": FORMAT_VERSION, "dim": dim, "dtype": _DTYPE_NAMES[dtype], "counts": counts}
        write_json(tmp / META_FILE, {**meta, **layout})
        EmbeddingStore(tmp)  # opening verifies it


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
        self.meta: dict[str, Any] = _read_meta(self.path / META_FILE, self.rerun())
        self.dim = int(self.meta["dim"])
        self.dtype = _NAME_DTYPES[self.meta["dtype"]]
        self._reader = ShardReader(self.path)
        self._shard_names, self._kinds = _load_index(self.path / INDEX_FILE, self.rerun())
        for kind in self.meta.get("counts", {}):  # a kind with no vectors has no index rows
            self._kinds.setdefault(kind, _KindIndex(*(np.zeros(0, np.int64) for _ in range(3))))
        self.verify()

    def rerun(self) -> str:
        """What rebuilds this store: the encode stage of the dataset whose folder holds it (data/<ds>/emb)."""
        folder = self.path.resolve().parent  # not meta.json's word for it: that file may be the damage
        if folder.parent.name == "emb_generations":  # data/<ds>/emb_generations/<g>/emb
            folder = folder.parent.parent
        dataset = folder.name
        return f"rerun `ur4rec encode --dataset {dataset}` (or `dvc repro encode@{dataset}`)"

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
            block = self._rows(self._shard_names[code], index.rows[pos[sel]])
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
            block = self._rows(self._shard_names[code], index.rows[sel])
            out[torch.from_numpy(index.ids[sel])] = block.to(dtype)
        return out

    def verify(self) -> None:
        """Check the index against the shards and meta.json: every row of every shard indexed exactly once."""
        for kind, index in self._kinds.items():
            expected = self.meta.get("counts", {}).get(kind)
            if expected is not None and expected != len(index.ids):
                raise StoreError(f"{self.path}: meta.json counts {expected} {kind!r} vectors, the index "
                                 f"{len(index.ids)}; {self.rerun()}")
            if len(np.unique(index.ids)) != len(index.ids):
                raise StoreError(f"{self.path}: kind {kind!r} indexes an id twice; {self.rerun()}")
            if len(index.ids) and index.ids[0] < 1:
                raise StoreError(
                    f"{self.path}: kind {kind!r} indexes id {int(index.ids[0])} (ids start at 1); {self.rerun()}"
                )
        for code, name in enumerate(self._shard_names):
            rows = np.concatenate([ix.rows[ix.shards == code] for ix in self._kinds.values()])
            shape = self._shape(name)
            if len(shape) != 2 or shape[1] != self.dim:
                raise StoreError(f"{self.path / name}: shape {shape} does not match dim {self.dim}; {self.rerun()}")
            if not np.array_equal(np.sort(rows), np.arange(shape[0])):
                raise StoreError(f"{self.path / name}: index rows do not cover its {shape[0]} rows exactly once; "
                                 f"{self.rerun()}")

    def _rows(self, name: str, rows: np.ndarray) -> torch.Tensor:
        try:
            return self._reader.rows(name, rows)
        except ShardError as exc:
            raise StoreError(f"{exc}; {self.rerun()}") from exc

    def _shape(self, name: str) -> tuple[int, ...]:
        if "/" in name or "\\" in name or name.startswith("."):  # the index names files inside the store only
            raise StoreError(f"{self.path / INDEX_FILE}: names shard {name!r} outside the store; {self.rerun()}")
        try:
            return self._reader.shape(name)
        except ShardError as exc:
            raise StoreError(f"{exc}; {self.rerun()}") from exc

    def _kind(self, kind: str) -> _KindIndex:
        if kind not in self._kinds:
            raise StoreError(f"{self.path}: no kind {kind!r} (has {self.kinds})")
        return self._kinds[kind]


def _read_meta(path: Path, rerun: str) -> dict[str, Any]:
    """meta.json, checked for what reading the store needs: its format version, dim and storage dtype."""
    if not path.is_file():
        raise StoreError(f"{path}: missing; is {path.parent} an encode-stage output? {rerun}")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:  # ValueError: not UTF-8, or not JSON
        raise StoreError(f"{path}: unreadable ({brief(exc)}); {rerun}") from exc
    if not isinstance(meta, dict):
        raise StoreError(f"{path}: not a JSON object; {rerun}")
    if meta.get("format") != FORMAT_VERSION:
        raise StoreError(f"{path}: store format {meta.get('format')!r}, this version reads {FORMAT_VERSION}; {rerun}")
    dim, counts = meta.get("dim"), meta.get("counts", {})
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1 or meta.get("dtype") not in _NAME_DTYPES:
        raise StoreError(f"{path}: needs a positive integer dim and a dtype in {sorted(_NAME_DTYPES)}; {rerun}")
    if not isinstance(counts, dict) or not all(isinstance(n, int) for n in counts.values()):
        raise StoreError(f"{path}: counts must map each kind to a number of vectors; {rerun}")
    return meta


def _load_index(path: Path, rerun: str) -> tuple[list[str], dict[str, _KindIndex]]:
    table = _read_index(path, rerun)
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


def _read_index(path: Path, rerun: str) -> pa.Table:
    """index.parquet with its four columns, typed and without nulls."""
    if not path.is_file():
        raise StoreError(f"{path}: missing; {rerun}")
    try:
        table = pq.read_table(path, page_checksum_verification=True)
        names = table.column_names
    except (OSError, ValueError, pa.ArrowException) as exc:  # ValueError: also a damaged name that is not UTF-8
        raise StoreError(f"{path}: unreadable ({brief(exc)}); {rerun}") from exc
    missing = [c for c in INDEX_TYPES if c not in names]
    if missing:
        raise StoreError(f"{path}: missing column(s) {missing}; {rerun}")
    try:
        table = table.select(list(INDEX_TYPES)).cast(pa.schema(INDEX_TYPES))
    except (ValueError, pa.ArrowException) as exc:
        raise StoreError(f"{path}: columns of other types ({brief(exc)}); {rerun}") from exc
    nulls = [c for c in INDEX_TYPES if table.column(c).null_count]
    if nulls:
        raise StoreError(f"{path}: null values in column(s) {nulls}; {rerun}")
    return table
