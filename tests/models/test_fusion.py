"""The fusions: all start as the identity; the gated ones keep a zero aug (the control) at Base exactly, and the
unit-L1 one steps alike whatever the aug's width and scale."""

from __future__ import annotations

import pytest
import torch

from tests.models.conftest import BACKBONES, N_CATEGORIES, N_ITEMS, TINY, make_batch
from ur4rec.models import build
from ur4rec.models.catalog import ItemCatalog
from ur4rec.models.fusion import GatedFusion, IdentityLinearFusion, make_fusion


def pair(name, item_categories, fusion: str):
    """A Base backbone and the same weights with an aug of width 6 fused by `fusion`, started as the identity."""
    catalog = ItemCatalog(N_ITEMS, N_CATEGORIES, item_categories)
    torch.manual_seed(0)
    base = build(name, TINY[name], catalog).eval()
    torch.manual_seed(0)
    augmented = build(name, TINY[name], catalog, aug_dim=6)
    augmented.use_fusion(fusion)
    augmented.load_state_dict(base.state_dict(), strict=False)
    augmented.fuse_as_identity()
    return base, augmented.eval()


@pytest.mark.parametrize("fusion", ["identity_linear", "gated", "gated_l1"])
@pytest.mark.parametrize("name", BACKBONES)
def test_every_fusion_starts_as_base_whatever_the_aug(name, fusion, item_categories):
    base, augmented = pair(name, item_categories, fusion)
    batch = make_batch(n_candidates=8)
    with torch.no_grad():
        assert torch.allclose(augmented(batch, torch.randn(4, 8, 6) * 5), base(batch), atol=1e-5)


@pytest.mark.parametrize("fusion", ["gated", "gated_l1"])
def test_the_gated_fusion_keeps_a_zero_aug_at_base_after_training_steps(item_categories, fusion):
    """The control of the gated fusions: every fusion weight moves, and a zero aug still gives h exactly."""
    base, augmented = pair("sasrec", item_categories, fusion)
    batch = make_batch(n_candidates=8)
    opt = torch.optim.AdamW(augmented.fusion_parameters(), lr=0.1, weight_decay=0.01)
    augmented.train()
    for _ in range(3):  # real steps on a real aug, so V, g and U all leave their start
        opt.zero_grad()
        augmented(batch, torch.randn(4, 8, 6)).logsumexp(-1).sum().backward()
        opt.step()
    fusion = augmented.fusion
    assert fusion.scale.weight.abs().sum() > 0 and fusion.gate.abs().sum() > 0
    h = augmented.item_repr(batch.candidates)
    assert torch.equal(fusion(h, torch.zeros(4, 8, 6)), h)
    with torch.no_grad():
        assert torch.allclose(augmented.eval()(batch, torch.zeros(4, 8, 6)), base(batch), atol=1e-6)


def test_the_identity_linear_fusion_moves_a_zero_aug_through_its_bias():
    """Why the gated fusion exists: the old one's control leaves Base as soon as its biases train."""
    torch.manual_seed(0)
    fusion = IdentityLinearFusion(4, 3)
    fusion.as_identity()
    h = torch.randn(5, 4)
    opt = torch.optim.SGD(fusion.parameters(), lr=0.1)
    fusion(h, torch.zeros(5, 3)).pow(2).sum().backward()
    opt.step()
    assert not torch.allclose(fusion(h, torch.zeros(5, 3)), h)


def test_the_gated_rescaling_is_bounded():
    torch.manual_seed(0)
    fusion = GatedFusion(4, 3)
    with torch.no_grad():
        fusion.scale.weight.fill_(1e3)  # a runaway step on V
    h, aug = torch.ones(2, 4), torch.full((2, 3), 10.0)
    out = fusion(h, aug)
    assert torch.all(out <= 2.0) and torch.all(out >= 0.0)  # gate g still 0: only h ⊙ (1 + tanh(.)), in [0, 2]


def test_a_user_level_aug_reorders_a_dot_product_ranking_under_the_gated_fusion(item_categories):
    _, augmented = pair("sasrec", item_categories, "gated")
    with torch.no_grad():
        torch.manual_seed(3)
        augmented.fusion.scale.weight.normal_()
        batch = make_batch(n_candidates=8)
        user = torch.randn(4, 1, 6)
        diff = augmented(batch, user.expand(-1, 8, -1)) - augmented(batch, (user + 1).expand(-1, 8, -1))
    assert (diff - diff.mean(1, keepdim=True)).abs().max() > 1e-4


def test_an_unknown_fusion_is_refused(item_categories):
    model = build("prm", TINY["prm"], ItemCatalog(N_ITEMS, N_CATEGORIES, item_categories), aug_dim=6)
    with pytest.raises(ValueError, match="unknown fusion 'linear'"):
        model.use_fusion("linear")


def first_step_shift(kind: str, aug: torch.Tensor, lr: float = 1e-3) -> float:
    """How far one Adam step on the fusion's V moves V·aug (its largest entry), from the identity start."""
    torch.manual_seed(0)
    fusion = make_fusion(kind, 8, aug.shape[-1])
    fusion.as_identity()
    h = torch.randn(aug.shape[0], 8)
    opt = torch.optim.Adam([fusion.scale.weight], lr=lr)
    fusion(h, aug).sum().backward()  # a consistent direction: every weight of V steps by about lr
    opt.step()
    with torch.no_grad():
        x = aug / aug.abs().sum(-1, keepdim=True) if kind == "gated_l1" else aug
        return float(fusion.scale(x).abs().max())


def test_one_rate_is_one_step_size_for_every_aug_only_on_unit_l1_input():
    """UR4Rec's aug (768 wide, |a| about 0.39) against KAR's (128 wide, about 0.10), as measured on SASRec: the
    gated fusion's V·aug moves about 20 times as far for the first in one step at the same rate; on unit-L1
    input both move the same."""
    torch.manual_seed(1)
    wide = torch.randn(16, 768).abs() * 0.39 * torch.randn(16, 768).sign()
    narrow = torch.randn(16, 128).abs() * 0.10 * torch.randn(16, 128).sign()
    raw = first_step_shift("gated", wide) / first_step_shift("gated", narrow)
    unit = first_step_shift("gated_l1", wide) / first_step_shift("gated_l1", narrow)
    assert raw > 10
    assert 0.5 < unit < 2
