"""Augmenters map a batch to aug [B, C, A] from real embedding-store tables."""

import dataclasses
import numpy as np
import pytest
import torch

from tests.retriever.conftest import Z_DIM, make_retriever
from ur4rec.encode.store import EmbeddingStore, KindVectors, write_store
from ur4rec.retriever.augment import (
    AugmentedRecommender,
    BroadcastAugmenter,
    HybridExpertAdaptor,
    KarAugmenter,
    PooledAugmenter,
    RetrieverAugmenter,
)
from ur4rec.retriever.build import build_augmenter
from ur4rec.retriever.config import ArchConfig, BackboneRetrieverConfig, RetrieverConfig
from ur4rec.retriever.variants import KarConfig, VariantConfig
from ur4rec.train.batch import RerankBatch

N_USERS, N_ITEMS = 5, 30


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    g = torch.Generator().manual_seed(0)
    path = tmp_path_factory.mktemp("emb") / "emb"
    items, users = np.arange(1, N_ITEMS + 1), np.arange(1, N_USERS + 1)
    write_store(path, {
        "item_know": KindVectors(items, torch.randn(N_ITEMS, Z_DIM, generator=g)),
        "item_text": KindVectors(items, torch.randn(N_ITEMS, Z_DIM, generator=g)),
        "user_pref": KindVectors(users, torch.randn(N_USERS, Z_DIM, generator=g)),
        "user_text": KindVectors(users, torch.randn(N_USERS, Z_DIM, generator=g)),
    }, {})
    return EmbeddingStore(path)


def batch():
    return RerankBatch(
        user_ids=torch.tensor([1, 4]),
        history=torch.tensor([[0, 0, 3, 7], [2, 5, 9, 11]]),
        candidates=torch.tensor([[20, 21, 22], [23, 24, 25]]),
        target_pos=torch.tensor([0, 2]),
        sample_ids=torch.tensor([10, 11]),
    )


def test_llm_and_bert_broadcast_their_user_vector(store):
    for kind, store_kind in (("llm", "user_pref"), ("bert", "user_text")):
        aug = build_augmenter(VariantConfig(kind=kind), RetrieverConfig(), BackboneRetrieverConfig(), store, N_USERS, N_ITEMS, 8)
        assert isinstance(aug, BroadcastAugmenter)
        out = aug(batch())
        assert out.shape == (2, 3, Z_DIM)
        expected = store.get(store_kind, [1, 4])
        assert torch.equal(out[:, 1], expected) and torch.equal(out[:, 2], expected)


def test_pooled_is_the_user_vector_and_the_mean_of_present_history_knowledge(store):
    aug = PooledAugmenter(store.table("user_pref", N_USERS + 1), store.table("item_know", N_ITEMS + 1), z_history=3)
    out = aug(batch())
    know = store.table("item_know", N_ITEMS + 1)
    # sample 0: last 3 = [0, 3, 7] -> padding ignored; sample 1: last 3 = [5, 9, 11]
    assert torch.allclose(out[0, 0, Z_DIM:], (know[3] + know[7]) / 2)
    assert torch.allclose(out[1, 2, Z_DIM:], (know[5] + know[9] + know[11]) / 3)
    assert torch.equal(out[1, 0, :Z_DIM], store.get("user_pref", [4])[0])


def test_hybrid_expert_gates_mix_shared_and_dedicated_experts():
    torch.manual_seed(0)
    cfg = KarConfig(n_shared=2, n_dedicated=3, hidden=8, out_dim=4, dropout=0.0)
    adaptor = HybridExpertAdaptor(Z_DIM, cfg).eval()
    x = torch.randn(6, Z_DIM)
    experts = [*adaptor.shared, *adaptor.dedicated[1]]
    gate = torch.softmax(adaptor.gates[1](x), -1)
    expected = sum(gate[:, [i]] * e(x) for i, e in enumerate(experts))
    assert torch.allclose(adaptor(x, 1), expected, atol=1e-6)
    # the two knowledge types share the shared experts but not the dedicated ones or the gates
    assert not torch.allclose(adaptor(x, 0), adaptor(x, 1))


def test_kar_pairs_the_adapted_preference_with_each_candidates_knowledge(store):
    cfg = KarConfig(n_shared=1, n_dedicated=1, hidden=8, out_dim=4, dropout=0.0)
    aug = build_augmenter(VariantConfig(kind="kar", kar=cfg), RetrieverConfig(), BackboneRetrieverConfig(), store, N_USERS, N_ITEMS, 8).eval()
    assert isinstance(aug, KarAugmenter) and aug.out_dim == 8
    out = aug(batch())
    assert out.shape == (2, 3, 8)
    assert torch.equal(out[0, 0, :4], out[0, 2, :4])  # preference part shared by the candidates
    know = aug.adaptor(store.get("item_know", [21]), KarAugmenter.KNOWLEDGE)
    assert torch.allclose(out[0, 1, 4:], know[0], atol=1e-6)


def test_ur4rec_augmenter_reads_only_the_history_and_the_candidates(store, tiny_bert):
    retriever = make_retriever(tiny_bert, n_proxies=2, h_dim=8, z_dim=Z_DIM)
    users, items = store.table("user_pref", N_USERS + 1), store.table("item_know", N_ITEMS + 1)
    aug = RetrieverAugmenter(retriever, users, items, z_history=4)
    table = torch.randn(N_ITEMS + 1, 8)
    out = aug(batch(), lambda ids: table[ids])
    assert out.shape == (2, 3, retriever.out_dim)
    # knowledge of an item outside every history (a candidate) does not enter Z
    changed = items.clone()
    changed[20:26] += 10.0
    aug_changed = RetrieverAugmenter(retriever, users, changed, z_history=4)
    assert torch.allclose(out, aug_changed(batch(), lambda ids: table[ids]), atol=1e-6)
    # a history item's knowledge does
    changed[7] += 10.0
    aug_hist = RetrieverAugmenter(retriever, users, changed, z_history=4)
    assert not torch.allclose(out[0], aug_hist(batch(), lambda ids: table[ids])[0], atol=1e-4)


def test_ur4rec_augmenter_in_bf16_stays_close_to_fp32(store, tiny_bert):
    retriever = make_retriever(tiny_bert, n_proxies=2, h_dim=8, z_dim=Z_DIM)
    users, items = store.table("user_pref", N_USERS + 1), store.table("item_know", N_ITEMS + 1)
    table = torch.randn(N_ITEMS + 1, 8)
    fp32 = RetrieverAugmenter(retriever, users, items, 4, bf16=False)(batch(), lambda ids: table[ids])
    bf16 = RetrieverAugmenter(retriever, users, items, 4, bf16=True)(batch(), lambda ids: table[ids])
    assert bf16.dtype == torch.float32
    assert torch.nn.functional.cosine_similarity(fp32, bf16, dim=-1).min() > 0.99


@pytest.mark.parametrize("query_grad", [True, False])
def test_ur4rec_queries_pass_the_retrievers_gradient_to_the_item_embeddings_unless_detached(store, tiny_bert, query_grad):
    retriever = make_retriever(tiny_bert, n_proxies=2, h_dim=8, z_dim=Z_DIM)
    users, items = store.table("user_pref", N_USERS + 1), store.table("item_know", N_ITEMS + 1)
    aug = RetrieverAugmenter(retriever, users, items, 4, query_grad=query_grad)
    table = torch.randn(N_ITEMS + 1, 8, requires_grad=True)
    out = aug(batch(), lambda ids: table[ids])
    (out * torch.randn(out.shape, generator=torch.Generator().manual_seed(0))).sum().backward()  # a plain sum meets a LayerNorm
    candidates = batch().candidates.unique()
    reached = table.grad is not None and bool(table.grad[candidates].abs().sum() > 1e-3)
    assert reached is query_grad
    assert retriever.proxies.grad.abs().sum() > 0  # the retriever learns either way


def test_augmented_recommender_feeds_the_augmenter_output_to_the_backbone(store):
    seen = {}

    class Backbone(torch.nn.Module):
        def forward(self, b, aug=None):
            seen["aug"] = aug
            return aug.sum(-1)

        def item_repr(self, ids):
            return ids.float().unsqueeze(-1)

    aug = BroadcastAugmenter(store.table("user_pref", N_USERS + 1))
    model = AugmentedRecommender(Backbone(), aug)
    scores = model(batch())
    assert scores.shape == (2, 3) and torch.equal(seen["aug"], aug(batch()))


def test_variant_without_proxies_builds_a_proxy_free_retriever(store, tiny_bert):
    rcfg = RetrieverConfig(arch=ArchConfig(init_checkpoint=str(tiny_bert), n_layers=1),
                           per_backbone={"prm": BackboneRetrieverConfig(n_proxies=4, z_history=4)})
    aug = build_augmenter(VariantConfig(kind="ur4rec", proxies="none", objectives=["pim"]), rcfg, rcfg.for_backbone("prm"), store,
                          N_USERS, N_ITEMS, 8)
    assert aug.retriever.n_proxies == 0 and aug.out_dim == 32
    k8 = build_augmenter(VariantConfig(kind="ur4rec", n_proxies=8), rcfg, rcfg.for_backbone("prm"), store, N_USERS, N_ITEMS, 8)
    assert k8.retriever.n_proxies == 8
    assert k8.query_grad  # Algorithm 1's joint training, unless a backbone's regime detaches its queries
    detached = dataclasses.replace(rcfg, joint=dataclasses.replace(rcfg.joint, query_grad=False))
    assert not build_augmenter(VariantConfig(kind="ur4rec"), detached, rcfg.for_backbone("prm"), store, N_USERS, N_ITEMS, 8).query_grad


def test_the_control_carries_nothing_at_the_width_of_the_broadcast_variants(store):
    control = build_augmenter(VariantConfig(kind="none"), RetrieverConfig(), BackboneRetrieverConfig(), store,
                              N_USERS, N_ITEMS, 8)
    llm = build_augmenter(VariantConfig(kind="llm"), RetrieverConfig(), BackboneRetrieverConfig(), store,
                          N_USERS, N_ITEMS, 8)
    out = control(batch())
    assert out.shape == llm(batch()).shape and not out.any()
    assert not list(control.parameters()) and not list(llm.parameters())
