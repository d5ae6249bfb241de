"""Bounded-size safetensors shards of row vectors: the one on-disk tensor format of the store and the cache.

A shard holds one tensor, `vectors [rows, dim]`. Shards are capped in bytes so a reader touches at most one
shard's worth of memory at a time, and reads go through `safe_open`, which memory-maps the file and copies
out only the rows asked for. safetensors holds raw numbers only, so loading a shard can never run code.

safetensors itself notices a shard cut short or grown, not one whose numbers changed; so each shard records
the sha256 of its numbers, and a reader checks it when it first opens the shard (one sequential read; shards
written before the digest existed are taken as they are). Any such defect is a `ShardError` naming the file.
"""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path
from typing import Iterator, Sequence

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from ur4rec.errors import UserError
from ur4rec.io import atomic_path

TENSOR = "vectors"
DIGEST = "sha256"
CHUNK = 1 << 20


class ShardError(UserError, ValueError):
    """A shard is missing, unreadable, or not what was written; the message names the file."""


def rows_per_shard(dim: int, dtype: torch.dtype, shard_mb: float) -> int:
    """How many rows fit in `shard_mb` MiB (at least one, so a huge vector still gets a shard)."""
    row_bytes = dim * torch.empty((), dtype=dtype).element_size()
    return max(1, int(shard_mb * 2**20) // row_bytes)


def chunk_bounds(n_rows: int, per_shard: int) -> Iterator[tuple[int, int]]:
    for start in range(0, n_rows, per_shard):
        yield start, min(start + per_shard, n_rows)


def write_shard(path: Path, vectors: torch.Tensor, metadata: dict[str, str] | None = None) -> None:
    """Write one shard atomically; `vectors` must be 2-D."""
    if vectors.dim() != 2:
        raise ValueError(f"{path}: a shard holds a 2-D [rows, dim] tensor, got shape {tuple(vectors.shape)}")
    vectors = vectors.contiguous()
    with atomic_path(path) as tmp:
        save_file({TENSOR: vectors}, str(tmp), metadata={**(metadata or {}), DIGEST: _tensor_digest(vectors)})
        _canonical_header(tmp)


def _canonical_header(path: Path) -> None:
    """Rewrite the file's JSON header with sorted keys, in place.

    safetensors keeps the metadata in a hash map whose order changes from one write to the next, so the same
    vectors gave different file bytes, hence a different DVC hash of the store and reruns of every stage
    downstream. The sorted compact JSON has the same length as the written one, so the data stays where it is."""
    with open(path, "r+b") as fh:
        (size,) = struct.unpack("<Q", fh.read(8))
        header = json.loads(fh.read(size))
        canonical = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
        if len(canonical) > size:  # never: the same keys and values, only their order differs
            raise ShardError(f"{path}: header of {size} bytes cannot be rewritten in {len(canonical)}")
        fh.seek(8)
        fh.write(canonical.ljust(size, b" "))  # safetensors pads its header with spaces too


def _tensor_digest(vectors: torch.Tensor) -> str:
    """sha256 of the bytes safetensors writes for `vectors` (row-major, little-endian)."""
    return hashlib.sha256(vectors.view(torch.uint8).numpy() if vectors.numel() else b"").hexdigest()


def _file_digest(path: Path) -> str:
    """sha256 of a one-tensor safetensors file's data: everything after the 8-byte length and the header."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        (header,) = struct.unpack("<Q", fh.read(8))
        fh.seek(8 + header)
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class ShardReader:
    """Open shards lazily and keep them open (memory-mapped); reads copy only the requested rows."""

    def __init__(self, root: Path):
        self.root = root
        self._open: dict[str, object] = {}

    def _handle(self, name: str):
        if name not in self._open:
            self._open[name] = open_checked(self.root / name)
        return self._open[name]

    def rows(self, name: str, rows: Sequence[int] | None = None) -> torch.Tensor:
        """Rows of one shard in the order given (`None`: all of them)."""
        tensor = self._handle(name).get_slice(TENSOR)
        if rows is None:
            return tensor[:]
        rows = [int(r) for r in rows]
        if not rows:
            return tensor[0:0]
        n = tensor.get_shape()[0]
        outside = next((r for r in rows if not 0 <= r < n), None)
        if outside is not None:  # a slice past the end would come back short, not fail
            raise ShardError(f"{self.root / name}: has {n} rows, not row {outside}")
        if rows == list(range(rows[0], rows[0] + len(rows))):
            return tensor[rows[0] : rows[0] + len(rows)]
        return tensor[rows]

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self._handle(name).get_slice(TENSOR).get_shape())

    def metadata(self, name: str) -> dict[str, str]:
        return self._handle(name).metadata() or {}


def open_checked(path: Path):
    """A `safe_open` handle on a shard that holds one 2-D `vectors` tensor whose numbers match their digest."""
    if not path.is_file():
        raise ShardError(f"{path}: shard missing")
    try:
        handle = safe_open(str(path), framework="pt")
        shape = handle.get_slice(TENSOR).get_shape() if TENSOR in handle.keys() else None
        recorded = (handle.metadata() or {}).get(DIGEST)
    except (SafetensorError, OSError, ValueError) as exc:
        raise ShardError(f"{path}: not a readable safetensors shard ({brief(exc)})") from exc
    if shape is None or len(shape) != 2:
        raise ShardError(f"{path}: holds no 2-D {TENSOR!r} tensor")
    if recorded is not None and recorded != _file_digest(path):
        raise ShardError(f"{path}: its numbers changed since it was written (sha256 mismatch)")
    return handle


def brief(exc: BaseException) -> str:
    """The first line of a reader's complaint (pyarrow and safetensors add details below it), for one-line errors."""
    return next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
