"""LRURec: the parallel recurrence against a step-by-step one, its initialisation, and the backbone contract."""

from __future__ import annotations

import math

import pytest
import torch

from tests.models.conftest import N_CATEGORIES, N_ITEMS, make_batch
from ur4rec.models import build
from ur4rec.models.catalog import ItemCatalog
from ur4rec.models.lrurec import (
    LRULayer,
    LRURec,
    chunked_scan,
    drop_empty_columns,
    last_state,
    linear_scan,
    ring_init,
)
from ur4rec.train.config import TrainConfig
from ur4rec.train.loop import fit
from ur4rec.train.rerank import RerankTask

TINY = {"dim": 16, "history_len": 12, "blocks": 2}


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """Tiny models run fastest on one thread; extra OpenMP threads only spin on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny(item_categories: torch.Tensor, aug_dim: int = 0, **overrides) -> LRURec:
    torch.manual_seed(0)
    return build("lrurec", {**TINY, **overrides}, ItemCatalog(N_ITEMS, N_CATEGORIES, item_categories), aug_dim).eval()


def sequential_scan(u: torch.Tensor, log_lambda: torch.Tensor) -> torch.Tensor:
    """The recurrence one step at a time: the definition the parallel form must reproduce."""
    lam = torch.exp(log_lambda)
    h, out = torch.zeros_like(u[:, 0]), []
    for t in range(u.shape[1]):
        h = lam * h + u[:, t]
        out.append(h)
    return torch.stack(out, dim=1)


def random_recurrence(steps: int, n: int = 6, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    u = torch.complex(torch.randn(3, steps, n, generator=g), torch.randn(3, steps, n, generator=g))
    log_lambda = torch.complex(-torch.rand(n, generator=g) * 0.3, torch.rand(n, generator=g) * 2 * math.pi)
    return u, log_lambda


@pytest.mark.parametrize("steps", [1, 2, 5, 8, 13, 150])
def test_parallel_scan_equals_the_step_by_step_recurrence(steps):
    u, log_lambda = random_recurrence(steps)
    expected = sequential_scan(u, log_lambda)
    assert torch.allclose(linear_scan(u, log_lambda), expected, atol=1e-4)
    for chunk in (4, 16):
        assert torch.allclose(chunked_scan(u, log_lambda, chunk), expected, atol=1e-4)
    assert torch.allclose(last_state(u, log_lambda), expected[:, -1], atol=1e-4)


def test_parallel_scan_has_the_reference_gradients():
    u, log_lambda = random_recurrence(11)
    grads = []
    for scan in (linear_scan, chunked_scan, sequential_scan):
        u_, ll_ = u.clone().requires_grad_(), log_lambda.clone().requires_grad_()
        scan(u_, ll_).abs().sum().backward()
        grads.append((u_.grad, ll_.grad))
    for grad_u, grad_lambda in grads[:2]:
        assert torch.allclose(grad_u, grads[-1][0], atol=1e-4)
        assert torch.allclose(grad_lambda, grads[-1][1], atol=1e-3)


def test_ring_init_puts_eigenvalues_on_the_ring_with_normalised_inputs():
    torch.manual_seed(0)
    nu_log, theta_log, gamma_log = ring_init(500, 0.8, 0.99, math.pi)
    radius = torch.exp(-torch.exp(nu_log))
    assert radius.min() >= 0.8 - 1e-6 and radius.max() <= 0.99 + 1e-6
    assert torch.exp(theta_log).max() <= math.pi
    assert torch.allclose(torch.exp(gamma_log), torch.sqrt(1 - radius**2), atol=1e-6)
    with pytest.raises(ValueError, match="r_min < r_max"):
        ring_init(4, 0.9, 0.8, math.pi)


def test_lru_layer_ignores_padded_steps():
    """A padded step leaves the state at zero, so prepending padding changes no real step's output."""
    torch.manual_seed(0)
    layer = LRULayer(8, 16, 0.8, 0.99, 2 * math.pi, dropout=0.0).eval()
    x = torch.randn(2, 5, 8)
    padded = torch.cat([torch.randn(2, 3, 8), x], dim=1)  # garbage at the padded steps
    present = torch.cat([torch.zeros(2, 3, dtype=torch.bool), torch.ones(2, 5, dtype=torch.bool)], dim=1)
    full = layer(padded, present)[:, 3:]
    assert torch.allclose(full, layer(x, torch.ones(2, 5, dtype=torch.bool)), atol=1e-5)
    assert torch.allclose(layer(padded, present, last_only=True)[:, 0], full[:, -1], atol=1e-5)


def test_drop_empty_columns_keeps_every_real_item():
    history = torch.tensor([[0, 0, 0, 4, 5], [0, 0, 7, 8, 9]])
    assert drop_empty_columns(history).tolist() == [[0, 4, 5], [7, 8, 9]]
    assert drop_empty_columns(torch.zeros(2, 4, dtype=torch.long)).shape == (2, 1)


def test_scores_have_one_finite_value_per_candidate(item_categories):
    model = tiny(item_categories)
    batch = make_batch(b=5, n_candidates=7)
    scores = model(batch)
    assert scores.shape == (5, 7) and torch.isfinite(scores).all()  # row 0 has an empty history
    assert model.item_repr(batch.candidates).shape == (5, 7, 16)
    assert model.item_repr(torch.zeros(3, dtype=torch.long)).abs().sum() == 0


def test_defaults_are_the_cpu_sized_paper_model(item_categories):
    model = build("lrurec", {}, ItemCatalog(N_ITEMS, N_CATEGORIES, item_categories))
    assert (model.history_len, model.dim, len(model.blocks)) == (150, 64, 2)
    assert model.blocks[0].lru.state == 128


def test_aug_vectors_change_scores_and_are_checked(item_categories):
    model = tiny(item_categories, aug_dim=6)
    batch = make_batch(n_candidates=8)
    aug = torch.randn(4, 8, 6)
    assert not torch.allclose(model(batch, aug), model(batch, aug + 1.0))
    with pytest.raises(ValueError, match=r"aug must have shape \[4, 8, 6\]"):
        model(batch)
    with pytest.raises(ValueError, match="aug_dim=0"):
        tiny(item_categories)(batch, aug)


def test_a_user_level_aug_changes_the_ranking(item_categories):
    model = tiny(item_categories, aug_dim=6)
    batch = make_batch(n_candidates=8)
    user_vec = torch.randn(4, 1, 6)
    aug_a, aug_b = user_vec.expand(-1, 8, -1), (user_vec + 1.0).expand(-1, 8, -1)
    with torch.no_grad():
        diff = model(batch, aug_a) - model(batch, aug_b)
        model.fusion.scale.weight.zero_()
        model.fusion.scale.bias.zero_()
        diff_linear_only = model(batch, aug_a) - model(batch, aug_b)
    assert (diff - diff.mean(1, keepdim=True)).abs().max() > 1e-4
    assert torch.allclose(diff_linear_only, diff_linear_only[:, :1].expand_as(diff_linear_only), atol=1e-5)


def test_left_padding_does_not_change_scores(item_categories):
    model = tiny(item_categories)
    batch = make_batch(b=3, history_len=12)
    batch.history[:, :6] = 0
    short = make_batch(b=3, history_len=12)
    short.history = batch.history[:, 6:].clone()
    assert torch.allclose(model(batch), model(short), atol=1e-5)


def test_history_matters_early_items_included(item_categories):
    model = tiny(item_categories)
    batch = make_batch(b=3)
    for position in (-1, -5):
        other = make_batch(b=3)
        other.history = batch.history.clone()
        other.history[1:, position] = (batch.history[1:, position] % N_ITEMS) + 1
        changed = ~torch.isclose(model(batch), model(other), atol=1e-6).all(1)
        assert changed.tolist() == [False, True, True]  # row 0 (empty history) is untouched


def test_candidates_are_scored_independently(item_categories):
    model = tiny(item_categories)
    batch = make_batch(b=2, n_candidates=6)
    other = make_batch(b=2, n_candidates=6)
    other.candidates[:, 1:] = make_batch(b=2, n_candidates=6, seed=5).candidates[:, 1:]
    assert torch.allclose(model(batch)[:, 0], model(other)[:, 0], atol=1e-5)


def test_recurrence_parameters_learn(item_categories):
    model = tiny(item_categories).train()
    batch = make_batch()
    torch.nn.functional.cross_entropy(model(batch), batch.target_pos).backward()
    lru = model.blocks[0].lru
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in (lru.nu_log, lru.theta_log, lru.gamma_log))


def test_fit_reduces_the_training_loss(prepared_dir, tmp_path):
    from ur4rec.train.batch import RerankData
    from ur4rec.train.catalog import read_catalog

    prepared = prepared_dir / "clusters" / "prepared"
    catalog = read_catalog(prepared / "items.parquet")
    torch.manual_seed(0)
    model = build("lrurec", TINY, catalog)
    train, valid = (RerankData.from_parquet(prepared / f"{s}.parquet", model.history_len, catalog.n_items)
                    for s in ("train", "valid"))
    cfg = TrainConfig(epochs=3, patience=3, batch_size=64, lr=3e-3, progress=False, threads=1)
    result = fit(model, RerankTask(train, valid), cfg, tmp_path)
    losses = [h["train_loss"] for h in result.history]
    assert losses[-1] < losses[0] - 0.1
    assert result.best_valid > 0.5  # the clusters are learnable; random ranking of 20 gives NDCG@10 near 0.3
