"""The vector tables of the augmenters and the retriever: z-scoring from training users only, and the negative
controls' shuffled and random contents, from a real embedding store."""

import numpy as np
import pytest
import torch

from ur4rec.config import ParamsError, load_params
from ur4rec.encode.store import EmbeddingStore, KindVectors, write_store
from ur4rec.retriever.build import build_augmenter
from ur4rec.retriever.config import BackboneRetrieverConfig, JointConfig, RetrieverConfig
from ur4rec.retriever.tables import item_table, user_table
from ur4rec.retriever.variants import VariantConfig
from ur4rec.runs.settings import parse_settings

from tests.conftest import REPO_ROOT

N_USERS, N_ITEMS, DIM = 12, 9, 6
TRAIN = [1, 2, 3, 5, 8, 9, 10, 11]  # 4, 6, 7, 12: valid and test users


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """MiniLM-like vectors: a large shared mean plus per-id variation, valid/test users far off the rest."""
    g = torch.Generator().manual_seed(0)
    shared = 3.0 * torch.randn(DIM, generator=g)
    users = shared + torch.randn(N_USERS, DIM, generator=g)
    users[[3, 5, 6, 11]] += 50.0  # ids 4, 6, 7, 12: statistics that include them would be far off
    items = shared + 2.0 * torch.randn(N_ITEMS, DIM, generator=g)
    path = tmp_path_factory.mktemp("emb") / "emb"
    write_store(path, {"user_pref": KindVectors(np.arange(1, N_USERS + 1), users),
                       "user_text": KindVectors(np.arange(1, N_USERS + 1), users + 1.0),
                       "item_know": KindVectors(np.arange(1, N_ITEMS + 1), items),
                       "item_text": KindVectors(np.arange(1, N_ITEMS + 1), items)}, {})
    return EmbeddingStore(path)


def users(store, standardise=False, **variant):
    return user_table(store, VariantConfig(kind="llm", **variant), N_USERS, TRAIN, standardise)


def test_real_unstandardised_tables_are_the_store(store):
    assert torch.equal(users(store), store.table("user_pref", N_USERS + 1))
    assert torch.equal(item_table(store, VariantConfig(kind="ur4rec"), N_ITEMS, False), store.table("item_know", N_ITEMS + 1))


def test_standardised_users_take_their_statistics_from_training_users_only(store):
    table = users(store, standardise=True)
    train = table[TRAIN]
    assert torch.allclose(train.mean(0), torch.zeros(DIM), atol=1e-5)
    assert torch.allclose(train.std(0), torch.ones(DIM), atol=1e-5)
    assert table[4].mean() > 10  # a held-out user is transformed, never used: it stays far off
    assert torch.equal(table[0], torch.zeros(DIM))  # padding
    items = item_table(store, VariantConfig(kind="ur4rec"), N_ITEMS, True)[1:]
    assert torch.allclose(items.mean(0), torch.zeros(DIM), atol=1e-5) and torch.allclose(items.std(0), torch.ones(DIM), atol=1e-5)


def test_a_shuffled_table_is_a_permutation_of_the_real_one_over_training_users(store):
    real, table = users(store), users(store, content="shuffled")
    assert sorted(map(tuple, table[TRAIN].tolist())) == sorted(map(tuple, real[TRAIN].tolist()))
    for u in TRAIN:  # another user's vector, never the user's own
        assert not torch.equal(table[u], real[u])
    for u in (4, 6, 7, 12):  # held-out users get a training user's vector
        assert any(torch.equal(table[u], real[t]) for t in TRAIN)
    assert torch.equal(table, users(store, content="shuffled"))  # fixed across builds
    assert not torch.equal(table, users(store, content="shuffled", content_seed=1))
    assert torch.equal(table[0], torch.zeros(DIM))


def test_random_tables_match_the_real_mean_and_sd_and_are_fixed_per_id(store):
    real = users(store)[TRAIN]
    table = users(store, content="random")
    assert torch.equal(table, users(store, content="random"))  # fixed across builds
    wide = user_table(store, VariantConfig(kind="llm", content="random"), 5000, TRAIN, False)  # a larger table:
    assert torch.equal(wide[: N_USERS + 1], table)  # the same vector for every id it shares
    drawn = wide[1:]  # many draws: their statistics are the training users'
    assert torch.allclose(drawn.mean(0), real.mean(0), atol=0.1 * real.std(0).max())
    assert torch.allclose(drawn.std(0), real.std(0), rtol=0.1)
    assert torch.equal(table[0], torch.zeros(DIM))
    keys = item_table(store, VariantConfig(kind="ur4rec", item_content="random"), N_ITEMS, False)
    assert not torch.equal(keys, item_table(store, VariantConfig(kind="ur4rec"), N_ITEMS, False))


def test_the_augmenter_reads_the_variant_tables(store):
    rcfg = RetrieverConfig(joint=JointConfig(standardise=True))
    aug = build_augmenter(VariantConfig(kind="llm", content="shuffled"), rcfg, BackboneRetrieverConfig(), store,
                          N_USERS, N_ITEMS, 8, train_users=TRAIN)
    expected = user_table(store, VariantConfig(kind="llm", content="shuffled"), N_USERS, TRAIN, True)
    assert torch.equal(aug.user_table, expected)
    with pytest.raises(ValueError, match="need the training users"):
        build_augmenter(VariantConfig(kind="llm"), rcfg, BackboneRetrieverConfig(), store, N_USERS, N_ITEMS, 8)


@pytest.mark.parametrize("override, message", [
    ("variant.llm.content=permuted", r"variant.content: 'permuted' is not one of"),
    ("variant.llm.item_content=random", "variant.item_content: kind llm reads no item vectors"),
    ("variant.control.content=shuffled", "variant.content: the control"),
    ("retriever.joint.fusion=linear", "retriever.joint.fusion: 'linear' is not one of"),
])
def test_bad_content_or_fusion_is_a_params_error_naming_the_key(override, message):
    with pytest.raises(ParamsError, match=message):
        parse_settings(load_params(REPO_ROOT / "params.yaml", [override]))


def test_the_negative_controls_are_registered_and_typed():
    s = parse_settings(load_params(REPO_ROOT / "params.yaml"))
    members = s.variant_sets["negative_controls"]
    assert {"llm-shuffled", "llm-random", "kar-random-knowledge", "kar-shuffled", "ur4rec-shuffled", "ur4rec-random-keys"} <= set(members)
    assert set(members) <= set(s.variant_sets["study"])
    for name in members:
        v = s.variant_config(name)
        assert v.family == "negative_control" and (v.content, v.item_content) != ("real", "real")
