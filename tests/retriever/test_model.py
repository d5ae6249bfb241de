"""Shapes, attention leaks under the masks of Figure 3, and the fast path against the per-item path."""

import pytest
import torch

from tests.retriever.conftest import inputs, make_retriever


def test_shapes_of_every_mode(tiny_bert):
    r = make_retriever(tiny_bert, n_proxies=4)
    h, z, zm = inputs(b=2, n_items=5)
    assert r.preference(z, zm).shape == (2, 4, 32)
    assert r.items(h).shape == (2, 5, 32)
    assert r.match(h, z, zm).shape == (2, 5)
    assert r.out_dim == 64  # concat: item output ++ proxy mean
    assert r.augment(h, z, zm).shape == (2, 5, 64)


@pytest.mark.parametrize("aggregate, width", [("item", 32), ("proxies", 32), ("concat", 64)])
def test_aggregation_width(tiny_bert, aggregate, width):
    r = make_retriever(tiny_bert, aggregate=aggregate)
    h, z, zm = inputs()
    assert r.out_dim == width and r.augment(h, z, zm).shape[-1] == width


def test_mask_a_proxy_outputs_ignore_items_but_follow_z(tiny_bert):
    """Under (a) the proxies see only proxies and Z; in the fast path they are exactly e^pref (eq. 6)."""
    r = make_retriever(tiny_bert, aggregate="proxies")
    h, z, zm = inputs()
    pref_mean = r.preference(z, zm).mean(1)
    out = r.augment(h, z, zm)
    out_perturbed = r.augment(h + 5 * torch.randn_like(h), z, zm)
    assert torch.allclose(out, out_perturbed, atol=1e-6)
    assert torch.allclose(out[:, 0], pref_mean, atol=1e-5)
    z2 = z.clone()
    z2[:, 0] += 3.0
    assert not torch.allclose(r.preference(z2, zm), r.preference(z, zm), atol=1e-3)


@pytest.mark.parametrize("n_layers", [1, 2, 3])
def test_mask_c_perturbing_one_item_leaves_the_others_unchanged(tiny_bert, n_layers):
    r = make_retriever(tiny_bert, n_layers=n_layers)
    h, z, zm = inputs(n_items=6)
    h2 = h.clone()
    h2[:, 3] += 4 * torch.randn_like(h2[:, 3])
    a, b = r.augment(h, z, zm), r.augment(h2, z, zm)
    others = [0, 1, 2, 4, 5]
    assert torch.allclose(a[:, others], b[:, others], atol=1e-6)
    assert not torch.allclose(a[:, 3], b[:, 3], atol=1e-3)


def test_mask_c_as_drawn_is_leak_free_for_one_block_only(tiny_bert):
    """Figure 3(c) as drawn (proxies see items): item 3 reaches item 0 through the proxies from block 2 on."""
    h, z, zm = inputs(n_items=4)
    h2 = h.clone()
    h2[:, 3] = 10 * torch.randn_like(h2[:, 3])
    one = make_retriever(tiny_bert, n_layers=1, proxies_see_items=True, aggregate="item")
    assert torch.allclose(one.augment(h, z, zm)[:, 0], one.augment(h2, z, zm)[:, 0], atol=1e-6)
    two = make_retriever(tiny_bert, n_layers=2, proxies_see_items=True, aggregate="item")
    # small (random BERT weights mix little) but far above float noise, which is exactly 0 here
    assert (two.augment(h, z, zm)[:, 0] - two.augment(h2, z, zm)[:, 0]).abs().max() > 1e-5


def test_mask_b_match_depends_on_its_own_item_only(tiny_bert):
    r = make_retriever(tiny_bert)
    h, z, zm = inputs(n_items=3)
    h2 = h.clone()
    h2[:, 1] += 4.0
    a, b = r.match(h, z, zm), r.match(h2, z, zm)
    assert torch.allclose(a[:, [0, 2]], b[:, [0, 2]], atol=1e-6)
    assert not torch.allclose(a[:, 1], b[:, 1], atol=1e-4)


def test_padded_keys_of_z_are_ignored(tiny_bert):
    r = make_retriever(tiny_bert)
    h, z, zm = inputs()
    z2 = z.clone()
    z2[0, -2:] = 100.0  # the padded keys of sample 0
    assert torch.allclose(r.augment(h, z, zm), r.augment(h, z2, zm), atol=1e-6)
    assert torch.allclose(r.match(h, z, zm), r.match(h, z2, zm), atol=1e-6)


def test_items_mode_has_no_cross_attention(tiny_bert):
    r = make_retriever(tiny_bert)
    h, _, _ = inputs()
    r.items(h).sum().backward()
    assert all(p.grad is None for p in r.blocks[0].cross_attn.parameters())
    assert r.blocks[0].ffn.intermediate.weight.grad is not None


@pytest.mark.parametrize("n_proxies", [0, 1, 4])
def test_fast_path_equals_per_item_path(tiny_bert, n_proxies):
    r = make_retriever(tiny_bert, n_proxies=n_proxies, n_layers=3)
    h, z, zm = inputs(n_items=7)
    fast, slow = r.augment(h, z, zm), r.augment_per_item(h, z, zm)
    assert torch.allclose(fast, slow, atol=1e-5), (fast - slow).abs().max()


def test_fast_path_equals_per_item_path_in_training_mode_gradients(tiny_bert):
    """Same outputs means same gradients: joint training through the fast path trains the per-item model."""
    r = make_retriever(tiny_bert)
    h, z, zm = inputs()
    r.augment(h, z, zm).square().sum().backward()
    fast = [p.grad.clone() for p in r.parameters() if p.grad is not None]
    r.zero_grad()
    r.augment_per_item(h, z, zm).square().sum().backward()
    slow = [p.grad.clone() for p in r.parameters() if p.grad is not None]
    assert len(fast) == len(slow)
    for a, b in zip(fast, slow):
        assert torch.allclose(a, b, atol=1e-4, rtol=1e-3)


def test_no_proxy_retriever_refuses_the_proxy_only_mode(tiny_bert):
    r = make_retriever(tiny_bert, n_proxies=0)
    h, z, zm = inputs()
    assert r.out_dim == 32  # no proxies: the item output alone
    assert r.match(h, z, zm).shape == (2, 5)
    with pytest.raises(ValueError, match="needs proxies"):
        r.preference(z, zm)


@pytest.mark.parametrize("n_proxies", [0, 3])
def test_structured_mask_c_attention_equals_the_masked_attention(n_proxies):
    from ur4rec.retriever import attention_masks
    from ur4rec.retriever.model import _attend, _items_see_proxies

    q, k, v = (torch.randn(2, 4, n_proxies + 5, 8, generator=torch.Generator().manual_seed(i)) for i in range(3))
    dense = _attend(q, k, v, attention_masks.proxies_and_items(n_proxies, 5), 0.0)
    structured = _items_see_proxies(q, k, v, n_proxies, 0.0)
    assert torch.allclose(structured, dense, atol=1e-5), (structured - dense).abs().max()


def test_match_projects_z_once_per_user_and_equals_one_pass_per_item(tiny_bert):
    r = make_retriever(tiny_bert, n_proxies=4, n_layers=2)
    h, z, zm = inputs(n_items=6)
    together = r.match(h, z, zm)
    alone = torch.cat([r.match(h[:, i:i + 1], z, zm) for i in range(h.shape[1])], dim=1)
    assert torch.allclose(together, alone, atol=1e-5), (together - alone).abs().max()


def test_dropout_drops_at_its_rate_keeps_the_expectation_and_repeats_under_a_seed():
    from ur4rec.retriever.model import dropout

    x = torch.ones(400_000)
    torch.manual_seed(0)
    out = dropout(x, 0.1, True)
    assert abs((out == 0).float().mean().item() - 0.1) < 0.003
    assert abs(out.mean().item() - 1.0) < 0.005
    assert out.unique().tolist() == [0.0, pytest.approx(65536 / (65536 - 6554))]
    torch.manual_seed(0)
    assert torch.equal(dropout(x, 0.1, True), out)
    assert dropout(x, 0.1, False) is x and dropout(x, 0.0, True) is x
    assert torch.equal(dropout(x, 1.0, True), torch.zeros_like(x))
