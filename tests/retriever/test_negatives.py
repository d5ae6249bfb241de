import numpy as np
import pytest
import torch

from ur4rec.retriever.negatives import NegativeSampler


def test_negatives_are_never_the_users_items():
    users = np.array([1, 1, 1, 2, 2])
    items = np.array([1, 2, 3, 4, 5])
    sampler = NegativeSampler(users, items, n_items=6)
    out = sampler.sample(torch.tensor([1, 2, 1]), 50, np.random.default_rng(0))
    assert out.shape == (3, 50)
    assert set(out[0].tolist()) <= {4, 5, 6} and set(out[2].tolist()) <= {4, 5, 6}
    assert set(out[1].tolist()) <= {1, 2, 3, 6}
    assert set(out[0].tolist()) == {4, 5, 6}  # uniform over what is allowed


def test_a_user_with_every_item_is_a_clear_error():
    sampler = NegativeSampler(np.array([7, 7]), np.array([1, 2]), n_items=2)
    with pytest.raises(ValueError, match="user 7"):
        sampler.sample(torch.tensor([7]), 3, np.random.default_rng(0))
