"""MAP@k and NDCG@k over candidate lists, as pure functions of score and label arrays.

Inputs are `scores` and `labels` of shape `[n_samples, n_candidates]`; labels are 0/1 relevance (in this
project exactly one relevant item, the target, per list). Candidates are ranked by descending score.

Ties are broken pessimistically: a candidate whose score equals a relevant item's score is ranked above it.
A model that outputs a constant therefore scores as badly as the worst ordering, never as well as the best,
and no metric depends on the order the candidates happen to be stored in.

Definitions (rank positions 1-based, rel_i = label at position i of the ranked list, R = number of relevant):
- DCG@k = sum_{i<=k} rel_i / log2(i + 1);  NDCG@k = DCG@k / IDCG@k, IDCG@k the DCG of the ideal ordering.
- AP@k = (1 / min(k, R)) * sum_{i<=k} rel_i * precision@i;  MAP@k is its mean over samples.
With one relevant item at rank r: NDCG@k = 1/log2(r + 1) and AP@k = 1/r when r <= k, else 0; so MAP@1 = NDCG@1
(the hit rate at 1), as in the paper's tables.

A list with no relevant item has no defined value and is an error, as are NaN scores.
"""

from __future__ import annotations

import numpy as np

METRICS = ("map", "ndcg")


def _ranked_labels(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Labels reordered by descending score, relevant items last among equal scores."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels)
    if scores.ndim != 2 or scores.shape != labels.shape:
        raise ValueError(f"scores and labels must both be [n_samples, n_candidates]; got {scores.shape} and {labels.shape}")
    if np.isnan(scores).any():
        row = int(np.flatnonzero(np.isnan(scores).any(1))[0])
        raise ValueError(f"NaN score in sample row {row}")
    rel = (labels > 0).astype(np.float64)
    empty = np.flatnonzero(rel.sum(1) == 0)
    if len(empty):
        raise ValueError(f"sample row {int(empty[0])} has no relevant candidate ({len(empty)} such rows)")
    # lexsort: last key is primary -> descending score, then label ascending (pessimistic ties)
    order = np.lexsort((rel, -scores), axis=-1)
    return np.take_along_axis(rel, order, axis=-1)


def _check_k(k: int) -> None:
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")


def ndcg_at_k_per_sample(scores: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """NDCG@k of each sample, shape `[n_samples]`."""
    ranked = _ranked_labels(scores, labels)
    _check_k(k)
    discounts = 1.0 / np.log2(np.arange(2, ranked.shape[1] + 2))
    top = min(k, ranked.shape[1])
    dcg = (ranked[:, :top] * discounts[:top]).sum(1)
    n_rel = ranked.sum(1).astype(np.int64)
    ideal = np.cumsum(discounts)[np.minimum(n_rel, top) - 1]
    return dcg / ideal


def map_at_k_per_sample(scores: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """AP@k of each sample, shape `[n_samples]`."""
    ranked = _ranked_labels(scores, labels)
    _check_k(k)
    top = min(k, ranked.shape[1])
    hits = ranked[:, :top]
    precision = np.cumsum(hits, axis=1) / np.arange(1, top + 1)
    n_rel = ranked.sum(1)
    return (precision * hits).sum(1) / np.minimum(n_rel, k)


def ndcg_at_k(scores: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Mean NDCG@k over samples."""
    return float(ndcg_at_k_per_sample(scores, labels, k).mean())


def map_at_k(scores: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Mean AP@k (MAP@k) over samples."""
    return float(map_at_k_per_sample(scores, labels, k).mean())


PER_SAMPLE = {"map": map_at_k_per_sample, "ndcg": ndcg_at_k_per_sample}


def metric_names(ks: list[int] | tuple[int, ...]) -> list[str]:
    """`["map@1", "ndcg@1", ...]` in a stable order."""
    return [f"{m}@{k}" for k in ks for m in METRICS]


def per_sample_metrics(scores: np.ndarray, labels: np.ndarray, ks: list[int] | tuple[int, ...]) -> dict[str, np.ndarray]:
    """Every `map@k` / `ndcg@k` for `ks`, per sample."""
    return {f"{m}@{k}": PER_SAMPLE[m](scores, labels, k) for k in ks for m in METRICS}


def parse_metric(name: str) -> tuple[str, int]:
    """`"ndcg@10"` -> `("ndcg", 10)`; an unknown metric is an error naming the known ones."""
    metric, sep, k = name.partition("@")
    if metric not in METRICS or not sep or not k.isdigit() or int(k) < 1:
        raise ValueError(f"unknown metric {name!r}: expected one of {METRICS} followed by @k, e.g. ndcg@10")
    return metric, int(k)


def score_metric(name: str, scores: np.ndarray, labels: np.ndarray) -> float:
    """Mean value of one named metric (e.g. the validation selection metric)."""
    metric, k = parse_metric(name)
    return float(PER_SAMPLE[metric](scores, labels, k).mean())
