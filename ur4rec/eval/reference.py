"""Non-neural reference scorers, as pure functions: what a count alone achieves on the same lists.

- `toppop`: an item's number of interactions among TRAINING users (the split no valid/test user is in), the
  same for every list. A Base backbone that cannot beat it has learned less than item popularity.
- `itemcf`: item-based collaborative filtering. Two items are similar by the cosine of their training-user sets,
  |U_i ∩ U_j| / sqrt(|U_i| |U_j|); a candidate scores the sum of its similarities to the items of the list's
  `history` (the items before the target that prepare stored, the history the sequential models read). No
  valid or test user's interactions enter the counts, and a list's own user enters only through its history.

Scores go through `ur4rec.eval.metrics` like a model's, so ties are broken pessimistically there: an item
training users never saw scores 0 and ties below every seen one.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse

SCORERS = ("toppop", "itemcf")


def item_counts(item_ids: np.ndarray, n_items: int) -> np.ndarray:
    """Interactions per item id, `[n_items + 1]` (index 0, padding, counts nothing)."""
    item_ids = np.asarray(item_ids, dtype=np.int64)
    if item_ids.size and (item_ids.min() < 1 or item_ids.max() > n_items):
        raise ValueError(f"item ids must lie in 1..{n_items}; got {item_ids.min()}..{item_ids.max()}")
    counts = np.bincount(item_ids, minlength=n_items + 1).astype(np.float64)
    counts[0] = 0.0
    return counts


def toppop_scores(candidates: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """`[N, C]` candidate ids -> their training counts."""
    return counts[np.asarray(candidates, dtype=np.int64)]


def item_similarity(user_ids: np.ndarray, item_ids: np.ndarray, n_items: int) -> sparse.csr_matrix:
    """Cosine similarity of items over the users who interacted with them, `[n_items + 1, n_items + 1]` sparse,
    zero diagonal. Pass training users' interactions only."""
    users = np.unique(np.asarray(user_ids), return_inverse=True)[1]
    x = sparse.csr_matrix((np.ones(len(users)), (users, np.asarray(item_ids, dtype=np.int64))),
                          shape=(int(users.max(initial=-1)) + 1, n_items + 1))
    x.data[:] = 1.0  # a repeated (user, item) pair counts once
    co = (x.T @ x).tocsr()
    norm = np.sqrt(co.diagonal())
    inv = np.divide(1.0, norm, out=np.zeros_like(norm), where=norm > 0)
    sim = sparse.diags(inv) @ co @ sparse.diags(inv)
    sim.setdiag(0.0)
    sim.eliminate_zeros()
    return sim.tocsr()


def itemcf_scores(history: np.ndarray, candidates: np.ndarray, sim: sparse.csr_matrix) -> np.ndarray:
    """`[N, L]` history ids (0 = padding) and `[N, C]` candidate ids -> `[N, C]` scores: each candidate's summed
    similarity to the distinct items of its list's history."""
    history = np.asarray(history, dtype=np.int64)
    candidates = np.asarray(candidates, dtype=np.int64)
    rows, cols = np.nonzero(history > 0)
    h = sparse.csr_matrix((np.ones(len(rows)), (rows, history[rows, cols])), shape=(len(history), sim.shape[0]))
    h.data[:] = 1.0  # duplicates summed by the constructor: a history is a set of items
    summed = (h @ sim).tocsr()
    flat_rows = np.repeat(np.arange(len(candidates)), candidates.shape[1])
    return np.asarray(summed[flat_rows, candidates.ravel()], dtype=np.float64).reshape(candidates.shape)
