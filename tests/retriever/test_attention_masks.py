import torch

from ur4rec.retriever import attention_masks as am


def test_proxies_only_is_bidirectional():
    assert am.proxies_only(3).shape == (3, 3)
    assert am.proxies_only(3).all()


def test_proxies_and_item_is_bidirectional():
    mask = am.proxies_and_item(4)
    assert mask.shape == (5, 5) and mask.all()


def test_multi_item_mask_items_see_proxies_and_themselves_only():
    k, n = 2, 3
    mask = am.proxies_and_items(k, n)
    expected = torch.tensor([
        # p0 p1 i0 i1 i2
        [1, 1, 0, 0, 0],
        [1, 1, 0, 0, 0],
        [1, 1, 1, 0, 0],
        [1, 1, 0, 1, 0],
        [1, 1, 0, 0, 1],
    ], dtype=torch.bool)
    assert torch.equal(mask, expected)


def test_multi_item_mask_as_drawn_lets_proxies_see_items():
    mask = am.proxies_and_items(2, 3, proxies_see_items=True)
    assert mask[:2].all()  # proxies see everything
    items = mask[2:, 2:]
    assert torch.equal(items, torch.eye(3, dtype=torch.bool))  # items never see each other


def test_multi_item_mask_without_proxies_is_the_identity():
    assert torch.equal(am.proxies_and_items(0, 4), torch.eye(4, dtype=torch.bool))
