"""Reranking samples as tensors: one split's parquet is read once, then batches are index slices.

`RerankBatch` is the only thing models see. `RerankData` holds a whole split in memory (a few MB even for
ML-1M) so an epoch is a loop over index slices, with no per-sample Python work and no DataLoader workers.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Iterator

import numpy as np
import pyarrow.parquet as pq
import torch
from torch import Tensor

from ur4rec.errors import UserError
from ur4rec.train.padding import pad_lists

COLUMNS = ["sample_id", "user_id", "target", "history", "candidates", "target_pos"]


@dataclass
class RerankBatch:
    """`user_ids [B]`, `history [B, L]` (oldest -> newest, left-padded with 0), `candidates [B, C]`,
    `target_pos [B]` (index of the target in `candidates`), `sample_ids [B]`."""

    user_ids: Tensor
    history: Tensor
    candidates: Tensor
    target_pos: Tensor
    sample_ids: Tensor

    def __len__(self) -> int:
        return self.candidates.shape[0]

    def to(self, device: torch.device | str) -> "RerankBatch":
        return RerankBatch(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})

    def rows(self, index: slice) -> "RerankBatch":
        """Some rows as a batch (a process's share of a global batch)."""
        return RerankBatch(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    def labels(self) -> Tensor:
        """`[B, C]` 0/1 relevance: 1 at the target."""
        out = torch.zeros_like(self.candidates, dtype=torch.float32)
        out[torch.arange(len(self)), self.target_pos] = 1.0
        return out


class SampleError(UserError, ValueError):
    """A prepared sample breaks the contract; the message names the file and sample_id."""


@dataclass
class RerankData:
    """A whole split as tensors (see `RerankBatch` for the fields); `take(idx)` collates a batch."""

    user_ids: Tensor
    history: Tensor
    candidates: Tensor
    target_pos: Tensor
    sample_ids: Tensor
    source: str = ""

    @classmethod
    def from_parquet(cls, path: str | Path, history_len: int, n_items: int | None = None) -> "RerankData":
        """Read a prepared split, keeping the last `history_len` history items (left-padded).

        Every sample is checked: equal candidate-list lengths, `candidates[target_pos] == target`, and (when
        `n_items` is given) all ids within `1..n_items`.
        """
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"{path}: prepared split not found (run the prepare stage first)")
        table = pq.read_table(path, columns=COLUMNS, page_checksum_verification=True)
        where = str(path)
        sample_ids = table.column("sample_id").to_numpy()
        lengths = table.column("candidates").combine_chunks().value_lengths().to_numpy(zero_copy_only=False)
        if len(lengths) and (lengths != lengths[0]).any():
            bad = int(np.flatnonzero(lengths != lengths[0])[0])
            raise SampleError(f"{where}: sample_id {sample_ids[bad]} has {lengths[bad]} candidates, others {lengths[0]}")
        width = int(lengths[0]) if len(lengths) else 0
        try:
            candidates = pad_lists(table.column("candidates"), width, side="right")
            history = pad_lists(table.column("history"), history_len, side="left")
        except ValueError as exc:
            raise SampleError(f"{where}: {exc}") from exc
        data = cls(
            user_ids=torch.from_numpy(table.column("user_id").to_numpy().astype(np.int64)),
            history=torch.from_numpy(history),
            candidates=torch.from_numpy(candidates),
            target_pos=torch.from_numpy(table.column("target_pos").to_numpy().astype(np.int64)),
            sample_ids=torch.from_numpy(sample_ids.astype(np.int64)),
            source=where,
        )
        data.check(table.column("target").to_numpy(), n_items)
        return data

    def check(self, targets: np.ndarray, n_items: int | None) -> None:
        """Raise `SampleError` naming the first bad sample."""
        n, width = self.candidates.shape if self.candidates.dim() == 2 else (0, 0)
        pos = self.target_pos.numpy()
        bad_pos = np.flatnonzero((pos < 0) | (pos >= max(width, 1)))
        self._fail_on(bad_pos, "target_pos outside the candidate list")
        at_pos = self.candidates.numpy()[np.arange(n), pos] if n else np.zeros(0)
        self._fail_on(np.flatnonzero(at_pos != targets), "candidates[target_pos] != target")
        self._fail_on(np.flatnonzero((self.candidates <= 0).any(1).numpy()), "candidate id <= 0")
        if n_items is not None:
            self._fail_on(np.flatnonzero((self.candidates > n_items).any(1).numpy()), f"candidate id > n_items={n_items}")
            self._fail_on(np.flatnonzero((self.history > n_items).any(1).numpy()), f"history id > n_items={n_items}")
        self._fail_on(np.flatnonzero((self.history < 0).any(1).numpy()), "negative history id")

    def _fail_on(self, rows: np.ndarray, reason: str) -> None:
        if len(rows):
            more = f" ({len(rows) - 1} more samples like it)" if len(rows) > 1 else ""
            raise SampleError(f"{self.source}: sample_id {int(self.sample_ids[rows[0]])}: {reason}{more}")

    def __len__(self) -> int:
        return self.candidates.shape[0]

    @property
    def n_candidates(self) -> int:
        return self.candidates.shape[1]

    def take(self, idx: Tensor) -> RerankBatch:
        return RerankBatch(
            user_ids=self.user_ids[idx],
            history=self.history[idx],
            candidates=self.candidates[idx],
            target_pos=self.target_pos[idx],
            sample_ids=self.sample_ids[idx],
        )

    def batches(self, batch_size: int, generator: torch.Generator | None = None) -> Iterator[RerankBatch]:
        """Batches in file order, or in a permutation drawn from `generator` (seeded: a deterministic order)."""
        order = torch.randperm(len(self), generator=generator) if generator is not None else torch.arange(len(self))
        for start in range(0, len(self), batch_size):
            yield self.take(order[start:start + batch_size])

    def n_batches(self, batch_size: int) -> int:
        return -(-len(self) // batch_size)
