"""Loss values on hand-made cases, computed by hand in the comments."""

import math

import pytest
import torch

from ur4rec.retriever import losses


def test_max_proxy_cosine_takes_the_best_proxy():
    pref = torch.tensor([[[1.0, 0.0], [0.0, 2.0]]])  # two proxies: x axis, y axis
    items = torch.tensor([[[3.0, 0.0], [0.0, -1.0], [1.0, 1.0]]])
    sim = losses.max_proxy_cosine(pref, items)
    # item 0: cos with p0 = 1; item 1: cos = 0 and -1 -> 0; item 2: cos = 1/sqrt2 with both
    assert torch.allclose(sim, torch.tensor([[1.0, 0.0, 1 / math.sqrt(2)]]))


def test_info_nce_matches_the_hand_computed_value():
    pref = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    pos = torch.tensor([[2.0, 0.0]])  # sim 1
    neg = torch.tensor([[[-1.0, 0.0], [-1.0, -1.0]]])  # sims max(-1, 0) = 0 and max(-.707, -.707) = -.707
    tau = 0.5
    logits = torch.tensor([1.0, 0.0, -1 / math.sqrt(2)]) / tau
    expected = -(logits[0] - torch.logsumexp(logits, 0))
    got = losses.info_nce(pref, pos, neg, tau)
    assert got.item() == pytest.approx(expected.item(), rel=1e-6)
    assert got.item() == pytest.approx(-math.log(math.exp(2) / (math.exp(2) + 1 + math.exp(-math.sqrt(2)))), rel=1e-6)


def test_info_nce_is_small_when_the_positive_is_far_more_similar():
    pref = torch.tensor([[[1.0, 0.0]]])
    good = losses.info_nce(pref, torch.tensor([[1.0, 0.0]]), torch.tensor([[[-1.0, 0.0]]]), tau=0.05)
    bad = losses.info_nce(pref, torch.tensor([[-1.0, 0.0]]), torch.tensor([[[1.0, 0.0]]]), tau=0.05)
    assert good.item() < 1e-6 and bad.item() == pytest.approx(40.0, rel=1e-4)


def test_pim_loss_is_binary_cross_entropy():
    logits = torch.tensor([0.0, 2.0])
    labels = torch.tensor([1.0, 0.0])
    # -log(sigmoid(0)) = log 2;  -log(1 - sigmoid(2)) = log(1 + e^2)
    expected = (math.log(2) + math.log(1 + math.exp(2))) / 2
    assert losses.pim_loss(logits, labels).item() == pytest.approx(expected, rel=1e-6)


def test_pretrain_loss_weights_pim_by_alpha_and_drops_switched_off_terms():
    cl, pim = torch.tensor(1.5), torch.tensor(0.4)
    assert losses.pretrain_loss(cl, pim, alpha=0.5).item() == pytest.approx(1.7)
    assert losses.pretrain_loss(None, pim, alpha=0.5).item() == pytest.approx(0.2)
    assert losses.pretrain_loss(cl, None, alpha=0.5).item() == pytest.approx(1.5)
    with pytest.raises(ValueError, match="at least one objective"):
        losses.pretrain_loss(None, None, alpha=1.0)
