"""Every backbone learns: trained with the shared loop on a learnable fixture, it beats random ranking on
held-out users."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tests.models.conftest import BACKBONES, RERANKERS, TINY
from ur4rec.eval.metrics import ndcg_at_k
from ur4rec.models import build
from ur4rec.train.batch import RerankData
from ur4rec.train.catalog import read_catalog
from ur4rec.train.config import TrainConfig
from ur4rec.train.loop import fit
from ur4rec.train.rerank import RerankTask, labels_of, predict

FAST = TrainConfig(epochs=6, patience=3, batch_size=32, lr=3e-3, progress=False, threads=1)


def expected_random_ndcg(n_candidates: int, k: int) -> float:
    """E[NDCG@k] when the target's rank is uniform over the list."""
    ranks = np.arange(1, min(k, n_candidates) + 1)
    return float((1 / np.log2(ranks + 1)).sum() / n_candidates)


@pytest.mark.slow
@pytest.mark.parametrize("name", BACKBONES)
def test_backbone_beats_random_on_held_out_users(name, prepared_dir: Path, tmp_path: Path):
    prepared = prepared_dir / "clusters" / "prepared"
    catalog = read_catalog(prepared / "items.parquet")
    torch.manual_seed(0)
    # The fixture's signal is in the history (no popularity), so the rerankers read it here.
    model = build(name, {**TINY[name], **({"user_history": True} if name in RERANKERS else {})}, catalog)
    split = {s: RerankData.from_parquet(prepared / f"{s}.parquet", model.history_len, catalog.n_items)
             for s in ("train", "valid", "test")}
    result = fit(model, RerankTask(split["train"], split["valid"]), FAST, tmp_path)
    test = split["test"]
    ndcg = ndcg_at_k(predict(model, test), labels_of(test), 10)
    random = expected_random_ndcg(test.n_candidates, 10)
    assert ndcg > random + 0.15, f"{name}: test NDCG@10 {ndcg:.3f} vs random {random:.3f} ({result.history})"
