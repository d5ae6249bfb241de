"""Bounded-size safetensors shards of row vectors: the one on-disk tensor format of the store and the cache.

A shard holds one tensor, `vectors [rows, dim]`. Shards are capped in bytes so a reader touches at most one
shard's worth of memory at a time, and reads go through `safe_open`, which memory-maps the file and copies
out only the rows asked for. safetensors holds raw numbers only, so loading a shard can never run code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Sequence

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ur4rec.io import atomic_path

TENSOR = "vectors"


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
    with atomic_path(path) as tmp:
        save_file({TENSOR: vectors.contiguous()}, str(tmp), metadata=metadata)


class ShardReader:
    """Open shards lazily and keep them open (memory-mapped); reads copy only the requested rows."""

    def __init__(self, root: Path):
        self.root = root
        self._open: dict[str, object] = {}

    def _handle(self, name: str):
        if name not in self._open:
            path = self.root / name
            if not path.exists():
                raise FileNotFoundError(f"{path}: shard listed in the index is missing (re-run the encode stage)")
            self._open[name] = safe_open(str(path), framework="pt")
        return self._open[name]

    def rows(self, name: str, rows: Sequence[int] | None = None) -> torch.Tensor:
        """Rows of one shard in the order given (`None`: all of them)."""
        tensor = self._handle(name).get_slice(TENSOR)
        if rows is None:
            return tensor[:]
        rows = [int(r) for r in rows]
        if not rows:
            return tensor[0:0]
        if rows == list(range(rows[0], rows[0] + len(rows))):
            return tensor[rows[0] : rows[0] + len(rows)]
        return tensor[rows]

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self._handle(name).get_slice(TENSOR).get_shape())

    def metadata(self, name: str) -> dict[str, str]:
        return self._handle(name).metadata() or {}
