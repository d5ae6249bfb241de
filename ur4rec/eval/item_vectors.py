"""How much an item representation says about which items go together, before any model is trained.

The measure: pairs of items a training user interacted with one after the other (a, b), against the same
first item with an item drawn uniformly at random (a, c). A representation scores a pair by the cosine of its
two vectors after the mean vector over all items is subtracted (a shared component would otherwise make every
pair look alike); the AUC is the chance that a consecutive pair outscores its random twin (ties count half).
0.5: the vectors carry nothing about co-consumption. Popularity enters as the second item's interaction count,
the level a vector has to reach to add more than "popular items follow everything".

Only training users' sequences are read, so no valid or test target informs the measure.
"""

from __future__ import annotations

import numpy as np


def consecutive_pairs(user_ids: np.ndarray, item_ids: np.ndarray, timestamps: np.ndarray, n_pairs: int,
                      n_items: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(first, next, random) item ids of up to `n_pairs` consecutive pairs drawn without replacement from the
    users' time-ordered sequences; `random` is uniform over 1..n_items and never equal to the pair's items."""
    user_ids, item_ids, timestamps = (np.asarray(a, dtype=np.int64) for a in (user_ids, item_ids, timestamps))
    order = np.lexsort((timestamps, user_ids))
    users, items = user_ids[order], item_ids[order]
    same_user = users[1:] == users[:-1]
    first, second = items[:-1][same_user], items[1:][same_user]
    rng = np.random.default_rng(seed)
    if len(first) > n_pairs:
        keep = np.sort(rng.choice(len(first), size=n_pairs, replace=False))
        first, second = first[keep], second[keep]
    other = rng.integers(1, n_items + 1, size=len(first))
    clash = (other == first) | (other == second)
    while clash.any():  # redraw the few that hit the pair itself
        other[clash] = rng.integers(1, n_items + 1, size=int(clash.sum()))
        clash = (other == first) | (other == second)
    return first, second, other


def centred_cosine(vectors: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine of rows `a` and `b` of `vectors` ([n_items + 1, d], row 0 unused) after subtracting the mean of
    rows 1..n; a zero row scores 0."""
    v = np.asarray(vectors, dtype=np.float64)[1:]
    v = v - v.mean(axis=0, keepdims=True)
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    v = np.divide(v, norms, out=np.zeros_like(v), where=norms > 0)
    v = np.vstack([np.zeros((1, v.shape[1])), v])
    return np.einsum("nd,nd->n", v[a], v[b])


def pair_auc(positive: np.ndarray, negative: np.ndarray) -> float:
    """P(positive > negative) over aligned pairs, ties counted half."""
    positive, negative = np.asarray(positive, np.float64), np.asarray(negative, np.float64)
    if positive.shape != negative.shape or positive.size == 0:
        raise ValueError(f"pair_auc needs two equal, non-empty arrays; got {positive.shape} and {negative.shape}")
    return float(np.mean((positive > negative) + 0.5 * (positive == negative)))


def vector_auc(vectors: np.ndarray, first: np.ndarray, second: np.ndarray, other: np.ndarray) -> float:
    """The measure for one representation: consecutive pairs against their random twins."""
    return pair_auc(centred_cosine(vectors, first, second), centred_cosine(vectors, first, other))


def popularity_auc(counts: np.ndarray, second: np.ndarray, other: np.ndarray) -> float:
    """The reference: the next item scored by its interaction count alone."""
    counts = np.asarray(counts, dtype=np.float64)
    return pair_auc(counts[second], counts[other])


def one_hot(category_ids: list[list[int] | None], n_items: int) -> np.ndarray:
    """[n_items + 1, n_categories] multi-hot rows from each item's category ids (row i = item id i)."""
    width = 1 + max((max(c) for c in category_ids if c), default=0)
    out = np.zeros((n_items + 1, width))
    for item, cats in enumerate(category_ids, start=1):
        if cats:
            out[item, list(cats)] = 1.0
    return out
