"""Shared fixtures for the backbone and training tests: a tiny catalogue, batches, prepared splits."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.models.prepared import write_prepared
from ur4rec.train.batch import RerankBatch

N_ITEMS, N_CATEGORIES = 30, 5
BACKBONES = ["dlcm", "prm", "setrank", "gru4rec", "sasrec"]
RERANKERS = ["dlcm", "prm", "setrank"]
# Small, fast versions of each backbone (the defaults' structure at width 16).
TINY = {
    "dlcm": {"dim": 16},
    "prm": {"dim": 16, "max_candidates": 20},
    "setrank": {"dim": 16, "inducing_points": 4},
    "gru4rec": {"dim": 16, "history_len": 12},
    "sasrec": {"dim": 16, "history_len": 12},
}


@pytest.fixture
def item_categories() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    cats = torch.randint(0, N_CATEGORIES + 1, (N_ITEMS + 1, 3), generator=g)
    cats[0] = 0
    return cats


def make_batch(b: int = 4, history_len: int = 12, n_candidates: int = 8, seed: int = 0) -> RerankBatch:
    """Random ids with left-padded histories of varying length (one empty)."""
    g = torch.Generator().manual_seed(seed)
    history = torch.randint(1, N_ITEMS + 1, (b, history_len), generator=g)
    for row in range(b):
        history[row, : row * history_len // b] = 0
    history[0] = 0
    candidates = torch.stack([torch.randperm(N_ITEMS, generator=g)[:n_candidates] + 1 for _ in range(b)])
    return RerankBatch(
        user_ids=torch.arange(1, b + 1), history=history, candidates=candidates,
        target_pos=torch.zeros(b, dtype=torch.long), sample_ids=torch.arange(b),
    )


@pytest.fixture(scope="session")
def prepared_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`data/clusters/prepared` under a session temp root (read-only for tests)."""
    root = tmp_path_factory.mktemp("data")
    write_prepared(root / "clusters" / "prepared")
    return root
