"""What vector a failed or empty LLM generation gets (param `encoder.on_bad_generation`).

Encoding the text of a failed generation would hand the model a confident vector for noise, so such rows get
a defined replacement instead, and every one is counted in the stage report:
- `zero`: the zero vector (what padding looks like to the models);
- `fallback_text`: the vector of the raw text of the same user/item (history or title + categories), so the
  row still carries real evidence;
- `mean`: the mean of the good vectors of the same kind.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import torch

MISSING = "missing"  # the generation table has no row for this id
BLANK = "blank"      # a row whose status is acceptable but whose text is empty or whitespace


@dataclass
class Generations:
    """LLM texts aligned to `ids`; `reasons[k]` is '' for a usable text, else why it is not used."""

    ids: np.ndarray
    texts: list[str]
    reasons: list[str]

    @property
    def bad(self) -> np.ndarray:
        return np.array([bool(r) for r in self.reasons], dtype=bool)

    def counts(self) -> dict[str, int]:
        return dict(sorted(Counter(r for r in self.reasons if r).items()))


def classify(
    ids: Sequence[int], rows: Mapping[int, tuple[str | None, str]], bad_statuses: Sequence[str]
) -> Generations:
    """Align generation rows `{id: (text, status)}` to `ids` and mark which ones the policy must replace."""
    texts, reasons = [], []
    for i in ids:
        text, status = rows.get(int(i), (None, MISSING))
        if status == MISSING or status in bad_statuses:
            reason = status
        elif not (text or "").strip():
            reason = BLANK
        else:
            reason = ""
        texts.append("" if reason else text)
        reasons.append(reason)
    return Generations(np.asarray(ids, dtype=np.int64), texts, reasons)


def apply_policy(
    vectors: torch.Tensor, bad: np.ndarray, policy: str, fallback: torch.Tensor | None = None
) -> torch.Tensor:
    """A copy of `vectors` with the `bad` rows replaced; `fallback` (aligned row for row) for `fallback_text`."""
    out = vectors.clone()
    mask = torch.from_numpy(np.asarray(bad, dtype=bool))
    if not mask.any():
        return out
    if policy == "zero":
        out[mask] = 0.0
    elif policy == "fallback_text":
        if fallback is None or fallback.shape != vectors.shape:
            raise ValueError("fallback_text needs a fallback tensor shaped like the vectors")
        out[mask] = fallback[mask].to(out.dtype)
    elif policy == "mean":
        out[mask] = vectors[~mask].mean(0) if (~mask).any() else 0.0
    else:
        raise ValueError(f"unknown policy {policy!r} (zero | fallback_text | mean)")
    return out
