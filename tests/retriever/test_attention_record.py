"""The retriever's attention over Z as the evaluation records it for the report's drill-down: the recorded
probabilities are the ones the forward pass used, recording changes no output, and each candidate's row is its
own."""

import pytest
import torch

from tests.retriever.conftest import Z_DIM, inputs, make_retriever
from tests.retriever.test_augment import N_ITEMS, N_USERS, batch, store  # noqa: F401  (the store fixture)
from ur4rec.retriever.augment import RetrieverAugmenter
from ur4rec.retriever.model import recording_cross_attention
from ur4rec.train.batch import RerankBatch


@pytest.mark.parametrize("aggregate", ["concat", "item_proxies"])
def test_recorded_probabilities_reproduce_each_cross_attention_output(tiny_bert, aggregate):
    retriever = make_retriever(tiny_bert, aggregate=aggregate)
    h, z, z_mask = inputs()
    calls = []
    hooks = [b.cross_attn.register_forward_hook(lambda m, args, out: calls.append((m, args, out)))
             for b in retriever.blocks]
    with torch.no_grad():
        plain = retriever.augment(h, z, z_mask)
        with recording_cross_attention(retriever) as found:
            recorded = retriever.augment(h, z, z_mask)
    for hook in hooks:
        hook.remove()
    assert torch.equal(plain, recorded)  # recording changes nothing
    assert len(found) == len(retriever.blocks) == len(calls) // 2
    for probs, (module, (x, kv, mask, repeat), out) in zip(found, calls[len(found):]):
        v = module._repeat(module._heads(module.value(kv)), repeat)
        att = (probs @ v).transpose(1, 2).reshape(x.shape)
        assert torch.allclose(module.norm(x + module.dense(att)), out, atol=1e-5)
        assert torch.allclose(probs.sum(-1), torch.ones(()), atol=1e-5)
    # padded keys of user 0 (the last two) get no attention; user 1 has none padded
    rows = found[0].reshape(2, -1, *found[0].shape[1:]) if aggregate == "item_proxies" else found[0].unsqueeze(1)
    assert torch.all(rows[0, ..., -2:] == 0) and torch.all(rows[1, ..., -2:] > 0)


def test_no_hook_is_left_after_recording(tiny_bert):
    retriever = make_retriever(tiny_bert)
    with recording_cross_attention(retriever):
        pass
    assert all(not b.cross_attn._forward_hooks for b in retriever.blocks)


def test_each_candidates_attention_is_its_own_and_names_its_keys(store, tiny_bert):  # noqa: F811
    retriever = make_retriever(tiny_bert, n_proxies=2, h_dim=8, z_dim=Z_DIM)
    aug = RetrieverAugmenter(retriever, store.table("user_pref", N_USERS + 1), store.table("item_know", N_ITEMS + 1),
                             z_history=4)
    table = torch.randn(N_ITEMS + 1, 8)
    full = batch()
    weights, ids, mask = aug.z_attention(full, lambda i: table[i])
    assert weights.shape == (2, 3, len(retriever.blocks), 5)
    assert ids.tolist() == [[0, 0, 0, 3, 7], [0, 2, 5, 9, 11]] and mask.tolist()[0] == [True, False, False, True, True]
    assert torch.all(weights[0, :, :, 1:3] == 0)
    assert torch.allclose(weights.sum(-1), torch.ones(()), atol=1e-5)
    # the proxies do not see the candidates (mask (c)): a candidate alone in its list attends the same way
    for c in range(3):
        alone = RerankBatch(full.user_ids, full.history, full.candidates[:, c:c + 1], torch.zeros(2, dtype=torch.long),
                            full.sample_ids)
        single, _, _ = aug.z_attention(alone, lambda i: table[i])
        assert torch.allclose(single[:, 0], weights[:, c], atol=1e-5)
    assert not torch.allclose(weights[:, 0], weights[:, 1], atol=1e-4)
