"""Length-bucketed batching of texts, shared by the frozen encoder and the text-based backbones."""

from __future__ import annotations

from typing import Sequence

import numpy as np


def length_batches(lengths: Sequence[int], max_texts: int, max_tokens: int) -> list[np.ndarray]:
    """Indices grouped into batches of similar length, longest first (an out-of-memory shows up at once).

    A batch holds at most `max_texts` texts and `max_tokens` padded tokens, so short texts travel in large
    batches (a forward pass has a fixed cost that small batches of short texts never amortise) while long
    ones stay within the same memory bound.
    """
    order = np.argsort(-np.asarray(lengths, dtype=np.int64), kind="stable")
    batches, start = [], 0
    while start < len(order):
        width = max(1, int(lengths[order[start]]))  # the longest text in the batch sets its padded width
        size = max(1, min(max_texts, max_tokens // width))
        batches.append(order[start : start + size])
        start += size
    return batches
