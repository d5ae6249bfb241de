"""Arrow list columns to fixed-width integer matrices, without a Python loop per row."""

from __future__ import annotations

from typing import Literal

import numpy as np
import pyarrow as pa


def pad_lists(column: pa.Array | pa.ChunkedArray, width: int, side: Literal["left", "right"] = "left") -> np.ndarray:
    """`[n, width]` int64: each list cut to its LAST `width` values and padded with 0 on `side`.

    Left padding keeps the most recent items at the end, where sequence models read the latest state. A
    null list counts as empty; a null inside a list is an error.
    """
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    column = column.fill_null(pa.scalar([], type=column.type)) if column.null_count else column
    offsets = column.offsets.to_numpy().astype(np.int64)
    offsets = offsets - offsets[0]
    flat = column.flatten()
    if flat.null_count:
        raise ValueError(f"{flat.null_count} null value(s) inside the lists")
    values = flat.to_numpy(zero_copy_only=False).astype(np.int64)
    n = len(column)
    out = np.zeros((n, width), dtype=np.int64)
    if width == 0 or n == 0:
        return out
    lengths = np.diff(offsets)
    kept = np.minimum(lengths, width)
    rows = np.repeat(np.arange(n), kept)
    # position of each kept value within its row's tail
    rank = np.arange(kept.sum()) - np.repeat(np.cumsum(kept) - kept, kept)
    src = np.repeat(offsets[1:] - kept, kept) + rank
    cols = rank + (np.repeat(width - kept, kept) if side == "left" else 0)
    out[rows, cols] = values[src]
    return out
