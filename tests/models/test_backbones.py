"""Shapes, the augmentation interface, padding and permutation behaviour of the paper's five backbones."""

from __future__ import annotations

import pytest
import torch

from tests.models.conftest import (
    BACKBONES,
    N_CATEGORIES,
    N_ITEMS,
    RERANKERS,
    TINY,
    make_batch,
)
from ur4rec.config import ParamsError
from ur4rec.models import build, lookup, names
from ur4rec.models.base import Backbone
from ur4rec.models.catalog import ItemCatalog


def tiny(name: str, item_categories: torch.Tensor, aug_dim: int = 0) -> Backbone:
    torch.manual_seed(0)
    return build(name, TINY[name], ItemCatalog(N_ITEMS, N_CATEGORIES, item_categories), aug_dim).eval()


def test_registry_knows_the_backbones():
    assert names() == sorted([*BACKBONES, "lrurec", "recformer"])
    assert lookup("SASRec").name == "sasrec"
    with pytest.raises(KeyError, match="unknown backbone 'bert4rec'.*dlcm"):
        lookup("bert4rec")


def test_config_typos_are_errors(item_categories):
    with pytest.raises(ParamsError, match=r"backbone.prm: unknown parameter\(s\) \['head'\]"):
        build("prm", {"head": 4}, ItemCatalog(N_ITEMS, N_CATEGORIES, item_categories))


def test_default_history_lengths_follow_the_paper(item_categories):
    lengths = {n: build(n, {}, ItemCatalog(N_ITEMS, N_CATEGORIES, item_categories)).history_len for n in BACKBONES}
    assert lengths == {"dlcm": 10, "prm": 10, "setrank": 10, "gru4rec": 150, "sasrec": 150}


@pytest.mark.parametrize("name", BACKBONES)
def test_scores_have_one_finite_value_per_candidate(name, item_categories):
    model = tiny(name, item_categories)
    batch = make_batch(b=5, n_candidates=7)
    scores = model(batch)
    assert scores.shape == (5, 7)
    assert torch.isfinite(scores).all()  # row 0 has an empty history
    assert model.item_repr(batch.candidates).shape == (5, 7, model.dim)
    assert model.item_repr(torch.zeros(3, dtype=torch.long)).abs().sum() == 0  # padding is the zero vector


@pytest.mark.parametrize("name", BACKBONES)
def test_aug_vectors_change_scores_and_are_checked(name, item_categories):
    model = tiny(name, item_categories, aug_dim=6)
    batch = make_batch(n_candidates=8)
    aug = torch.randn(4, 8, 6)
    scores = model(batch, aug)
    assert scores.shape == (4, 8)
    assert not torch.allclose(scores, model(batch, aug + 1.0))
    with pytest.raises(ValueError, match=r"aug must have shape \[4, 8, 6\]"):
        model(batch)
    with pytest.raises(ValueError, match=r"aug must have shape"):
        model(batch, torch.randn(4, 8, 5))
    with pytest.raises(ValueError, match="aug_dim=0"):
        tiny(name, item_categories)(batch, aug)


@pytest.mark.parametrize("name", BACKBONES)
def test_a_user_level_aug_changes_the_ranking(name, item_categories):
    """+BERT/+LLM give every candidate the same vector; it must still be able to reorder the candidates."""
    model = tiny(name, item_categories, aug_dim=6).eval()
    batch = make_batch(n_candidates=8)
    user_vec = torch.randn(4, 1, 6)
    aug_a, aug_b = user_vec.expand(-1, 8, -1), (user_vec + 1.0).expand(-1, 8, -1)
    with torch.no_grad():
        diff = model(batch, aug_a) - model(batch, aug_b)
        # the scaling term is what makes the difference for dot-product scorers: without it only a per-user shift
        model.fusion.scale.weight.zero_()
        model.fusion.scale.bias.zero_()
        diff_linear_only = model(batch, aug_a) - model(batch, aug_b)
    assert (diff - diff.mean(1, keepdim=True)).abs().max() > 1e-4
    if name in ("gru4rec", "sasrec"):
        assert torch.allclose(diff_linear_only, diff_linear_only[:, :1].expand_as(diff_linear_only), atol=1e-5)


@pytest.mark.parametrize("name", BACKBONES)
def test_left_padding_does_not_change_scores(name, item_categories):
    """A history [a, b] and the same history left-padded to [0, 0, a, b] are the same user."""
    model = tiny(name, item_categories)
    batch = make_batch(b=3, history_len=12)
    batch.history[:, :6] = 0
    short = make_batch(b=3, history_len=12)
    short.history = batch.history[:, 6:].clone()
    assert torch.allclose(model(batch), model(short), atol=1e-5)


def _other_history(batch):
    other = make_batch(b=3)
    other.history = make_batch(b=3, seed=9).history
    other.history[:, -1] = (batch.history[:, -1] % N_ITEMS) + 1
    return other


@pytest.mark.parametrize("name", ["gru4rec", "sasrec"])
def test_sequential_models_read_the_history(name, item_categories):
    model = tiny(name, item_categories)
    batch = make_batch(b=3)
    assert not torch.allclose(model(batch), model(_other_history(batch)))


@pytest.mark.parametrize("name", RERANKERS)
def test_rerankers_read_the_history_only_when_asked(name, item_categories):
    """History-blind by default (the paper's and KAR's setting: the user enters through the augmentation)."""
    batch = make_batch(b=3)
    blind = tiny(name, item_categories)
    assert torch.equal(blind(batch), blind(_other_history(batch)))
    torch.manual_seed(0)
    aware = build(name, {**TINY[name], "user_history": True}, ItemCatalog(N_ITEMS, N_CATEGORIES, item_categories)).eval()
    assert not torch.allclose(aware(batch), aware(_other_history(batch)))


@pytest.mark.parametrize("inducing_points", [4, 0])
def test_setrank_is_permutation_equivariant(inducing_points, item_categories):
    torch.manual_seed(0)
    model = build("setrank", {**TINY["setrank"], "inducing_points": inducing_points}, ItemCatalog(N_ITEMS, N_CATEGORIES,
                  item_categories)).eval()
    batch = make_batch(b=3, n_candidates=10)
    perm = torch.randperm(10)
    permuted = make_batch(b=3, n_candidates=10)
    permuted.candidates = batch.candidates[:, perm]
    assert torch.allclose(model(permuted), model(batch)[:, perm], atol=1e-5)


@pytest.mark.parametrize("name", ["prm", "dlcm"])
def test_order_aware_rerankers_are_not_equivariant(name, item_categories):
    """The equivariance test above can fail: the list-order models do depend on the order."""
    model = tiny(name, item_categories)
    batch = make_batch(b=3, n_candidates=10)
    perm = torch.arange(9, -1, -1)
    permuted = make_batch(b=3, n_candidates=10)
    permuted.candidates = batch.candidates[:, perm]
    assert not torch.allclose(model(permuted), model(batch)[:, perm], atol=1e-5)


@pytest.mark.parametrize("name", ["gru4rec", "sasrec"])
def test_sequential_models_score_candidates_independently(name, item_categories):
    """Dot-product models: a candidate's score does not depend on the other candidates."""
    model = tiny(name, item_categories)
    batch = make_batch(b=2, n_candidates=6)
    other = make_batch(b=2, n_candidates=6)
    other.candidates[:, 1:] = make_batch(b=2, n_candidates=6, seed=5).candidates[:, 1:]
    assert torch.allclose(model(batch)[:, 0], model(other)[:, 0], atol=1e-5)


def test_sasrec_last_state_sees_earlier_items(item_categories):
    """Only the most recent position's output is used, and it may see every earlier item."""
    model = tiny("sasrec", item_categories)
    batch = make_batch(b=2)
    other = make_batch(b=2)
    other.history = batch.history.clone()
    other.history[:, -3] = (batch.history[:, -3] % N_ITEMS) + 1
    assert not torch.allclose(model(batch), model(other))


def test_prm_rejects_lists_longer_than_its_position_table(item_categories):
    model = tiny("prm", item_categories)
    with pytest.raises(ValueError, match="max_candidates=20"):
        model(make_batch(n_candidates=25))


def test_item_features_combine_id_and_categories(item_categories):
    model = tiny("dlcm", item_categories)
    items = model.items
    ids = torch.tensor([1, 2, 3])
    cats = item_categories[ids]
    present = (cats > 0).float().unsqueeze(-1)
    expected = items.ids(ids) + (items.categories(cats) * present).sum(1) / present.sum(1).clamp(min=1)
    assert torch.allclose(model.item_repr(ids), expected)
    with pytest.raises(ValueError, match="item_categories must be"):
        build("dlcm", TINY["dlcm"], ItemCatalog(N_ITEMS + 1, N_CATEGORIES, item_categories))


@pytest.mark.parametrize("name", BACKBONES)
def test_item_bias_adds_a_per_candidate_offset_and_leaves_the_rest_as_without(name, item_categories):
    counts = torch.arange(N_ITEMS + 1, dtype=torch.float64) * 3
    catalog = ItemCatalog(N_ITEMS, N_CATEGORIES, item_categories, item_counts=counts)
    batch = make_batch(n_candidates=8)
    built = {}
    for kind in ("none", "learned", "popularity"):
        torch.manual_seed(0)
        built[kind] = build(name, {**TINY[name], "item_bias": kind}, catalog).eval()
    plain = built["none"](batch)
    assert torch.equal(built["learned"](batch), plain)  # zero at the start, same other weights
    # popularity starts at 1 x log(1 + n_i): an untrained model ranks as TopPop plus its own scores
    assert torch.allclose(built["popularity"](batch), plain + torch.log1p(counts.float())[batch.candidates])
    with torch.no_grad():
        built["learned"].item_bias.bias[batch.candidates[0, 0]] = 5.0
    assert built["learned"](batch)[0, 0].item() == pytest.approx(plain[0, 0].item() + 5.0)


def test_item_bias_values_are_checked(item_categories):
    with pytest.raises(ParamsError, match=r"backbone.prm: item_bias must be one of \['none', 'learned', 'popularity'\]"):
        build("prm", {"item_bias": "pop"}, ItemCatalog(N_ITEMS, N_CATEGORIES, item_categories))
    with pytest.raises(ValueError, match="popularity needs the catalogue's item_counts"):
        build("prm", {"item_bias": "popularity"}, ItemCatalog(N_ITEMS, N_CATEGORIES, item_categories))
