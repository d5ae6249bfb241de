"""Recformer on a tiny real BERT (random weights, the packaged MiniLM tokenizer): text inputs, the backbone
contract, the cached item table, freezing, pre-training and a short fit."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.models.conftest import N_CATEGORIES, N_ITEMS, make_batch
from ur4rec.models import build, entry
from ur4rec.models.catalog import ItemCatalog
from ur4rec.models.recformer import MissingItemTexts, Recformer, TextModelError
from ur4rec.models.recformer_pretrain import mask_tokens, pretrain
from ur4rec.models.recformer_text import (
    KEY,
    PAD_TYPE,
    SPECIAL,
    VALUE,
    key_order,
    key_spans,
)
from ur4rec.train.batch import RerankData
from ur4rec.train.config import TrainConfig
from ur4rec.train.loop import fit
from ur4rec.train.rerank import RerankTask

GENRES = ["drama", "comedy", "action", "horror", "musical"]


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """Tiny models run fastest on one thread; extra OpenMP threads only spin on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny_text_model(tmp_path_factory) -> Path:
    """A 2-layer, width-32 BERT in safetensors beside the packaged MiniLM tokenizer."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    from ur4rec.packaged import PackagedModelMissing, minilm_dir

    try:
        tokenizer = AutoTokenizer.from_pretrained(minilm_dir())
    except PackagedModelMissing as exc:
        pytest.skip(str(exc))
    folder = tmp_path_factory.mktemp("tiny-bert")
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=64)
    BertModel(config).save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder


def texts(item_categories: torch.Tensor) -> tuple[str, ...]:
    rows = [f"title movie {i} categories {', '.join(GENRES[c - 1] for c in item_categories[i].tolist() if c)} "
            f"year {1990 + i}" for i in range(1, N_ITEMS + 1)]
    return ("", *rows)


def tiny_cfg(folder: Path, **overrides) -> dict:
    return {"text_model": str(folder), "max_tokens": 48, "max_item_tokens": 12, "history_items": 6,
            "history_len": 12, "lr": 1e-3, **overrides}


def tiny(folder: Path, item_categories: torch.Tensor, aug_dim: int = 0, **overrides) -> Recformer:
    torch.manual_seed(0)
    catalog = ItemCatalog(N_ITEMS, N_CATEGORIES, item_categories, texts(item_categories))
    return build("recformer", tiny_cfg(folder, **overrides), catalog, aug_dim).eval()


# ---------------------------------------------------------------- the catalogue and the text inputs


def test_needs_item_texts_and_refuses_a_catalogue_without_them(item_categories):
    assert entry("recformer").needs_item_texts is True
    assert entry("lrurec").needs_item_texts is False
    with pytest.raises(MissingItemTexts, match=r"catalogue has none.*with_texts=True"):
        build("recformer", {}, ItemCatalog(N_ITEMS, N_CATEGORIES, item_categories))
    with pytest.raises(MissingItemTexts, match=r"2 texts for 30 items \(expected n_items \+ 1"):
        build("recformer", {}, ItemCatalog(N_ITEMS, N_CATEGORIES, item_categories, ("", "one item")))


def test_text_model_must_be_a_model_folder(item_categories, tmp_path):
    catalog = ItemCatalog(N_ITEMS, N_CATEGORIES, item_categories, texts(item_categories))
    with pytest.raises(TextModelError, match="not a model folder"):
        build("recformer", {"text_model": str(tmp_path)}, catalog)
    with pytest.raises(TextModelError, match="unknown packaged model"):
        build("recformer", {"text_model": "packaged:longformer"}, catalog)


def test_keys_are_found_in_the_order_the_catalogue_writes_them():
    order = key_order(["title", "categories", "price", "release date", "video release date", "year"])

    def found(text: str) -> list[str]:
        return [text[a:b] for a, b in key_spans(text, order)]

    assert found("title the price of salt categories drama year 1952") == ["title", "categories", "year"]
    assert found("title x video release date 2-jan year 1") == ["title", "video release date", "year"]
    assert found("title x release date 1 video release date 2") == ["title", "release date", "video release date"]
    assert found("no keys at all") == []


def test_item_tokens_are_typed_key_or_value(tiny_text_model, item_categories):
    model = tiny(tiny_text_model, item_categories)
    tokenizer_ids = model.inputs.items.ids[3]
    types = model.inputs.items.types[3]
    from transformers import AutoTokenizer

    tokens = AutoTokenizer.from_pretrained(tiny_text_model).convert_ids_to_tokens(list(tokenizer_ids))
    typed = dict(zip(tokens, types))
    assert (typed["title"], typed["categories"], typed["year"]) == (KEY, KEY, KEY)
    assert typed["movie"] == VALUE and typed[GENRES[item_categories[3, 0] - 1]] == VALUE
    assert len(tokenizer_ids) <= 12 and model.inputs.items.ids[0] == ()


def test_user_text_is_most_recent_first_and_cut_to_the_budget(tiny_text_model, item_categories):
    model = tiny(tiny_text_model, item_categories, history_items=2, max_tokens=48)
    inputs = model.inputs
    history = torch.tensor([[0, 0, 0, 7, 8, 9], [0, 0, 0, 0, 0, 0]])
    batch = inputs.users(history)
    n9, n8 = len(inputs.items.ids[9]), len(inputs.items.ids[8])
    row = batch.ids[0, : batch.mask[0].sum()].tolist()
    assert row == [inputs.cls_id, *inputs.items.ids[9], *inputs.items.ids[8], inputs.sep_id]  # 7 is cut
    assert batch.item_positions[0, : 2 + n9 + n8].tolist() == [0] + [1] * n9 + [2] * n8 + [0]
    assert batch.mask[1].sum() == 2 and batch.types[1, 2:].eq(PAD_TYPE).all()
    assert batch.item_positions[1, 2:].eq(3).all() and batch.types[0, 0] == SPECIAL
    short = tiny(tiny_text_model, item_categories, max_tokens=10).inputs.users(history)
    assert short.ids.shape[1] == 10 and short.ids[0, -1] == inputs.sep_id


# ---------------------------------------------------------------- the backbone contract


def test_scores_have_one_finite_value_per_candidate(tiny_text_model, item_categories):
    model = tiny(tiny_text_model, item_categories)
    batch = make_batch(b=5, n_candidates=7)
    scores = model(batch)
    assert scores.shape == (5, 7) and torch.isfinite(scores).all()  # row 0 has an empty history
    assert scores.abs().max() <= 1 / model.cfg.temperature + 1e-3  # cosine / temperature
    assert model.item_repr(batch.candidates).shape == (5, 7, 32) and model.dim == 32  # dim 0: the encoder's width
    assert model.item_repr(torch.zeros(3, dtype=torch.long)).abs().sum() == 0


def test_a_smaller_dim_projects_users_and_items(tiny_text_model, item_categories):
    model = tiny(tiny_text_model, item_categories, dim=8)
    batch = make_batch(n_candidates=5)
    assert model.item_repr(batch.candidates).shape == (4, 5, 8)
    assert model(batch).shape == (4, 5)


def test_aug_vectors_change_scores_and_are_checked(tiny_text_model, item_categories):
    model = tiny(tiny_text_model, item_categories, aug_dim=6)
    batch = make_batch(n_candidates=8)
    aug = torch.randn(4, 8, 6)
    assert not torch.allclose(model(batch, aug), model(batch, aug + 1.0))
    with pytest.raises(ValueError, match=r"aug must have shape \[4, 8, 6\]"):
        model(batch)
    with pytest.raises(ValueError, match="aug_dim=0"):
        tiny(tiny_text_model, item_categories)(batch, aug)


def test_a_user_level_aug_changes_the_ranking(tiny_text_model, item_categories):
    model = tiny(tiny_text_model, item_categories, aug_dim=6)
    batch = make_batch(n_candidates=8)
    user_vec = torch.randn(4, 1, 6)
    with torch.no_grad():
        diff = model(batch, user_vec.expand(-1, 8, -1)) - model(batch, (user_vec + 1.0).expand(-1, 8, -1))
    assert (diff - diff.mean(1, keepdim=True)).abs().max() > 1e-4


def test_left_padding_does_not_change_scores(tiny_text_model, item_categories):
    model = tiny(tiny_text_model, item_categories)
    batch = make_batch(b=3, history_len=12)
    batch.history[:, :6] = 0
    short = make_batch(b=3, history_len=12)
    short.history = batch.history[:, 6:].clone()
    assert torch.allclose(model(batch), model(short), atol=1e-5)


def test_history_matters(tiny_text_model, item_categories):
    model = tiny(tiny_text_model, item_categories)
    batch = make_batch(b=3)
    other = make_batch(b=3)
    other.history = batch.history.clone()
    other.history[:, -1] = (batch.history[:, -1] % N_ITEMS) + 1
    changed = ~torch.isclose(model(batch), model(other), atol=1e-6).all(1)
    assert changed.tolist() == [True, True, True]  # row 0 goes from empty to one item


def test_candidates_are_scored_independently(tiny_text_model, item_categories):
    model = tiny(tiny_text_model, item_categories)
    batch = make_batch(b=2, n_candidates=6)
    other = make_batch(b=2, n_candidates=6)
    other.candidates[:, 1:] = make_batch(b=2, n_candidates=6, seed=5).candidates[:, 1:]
    assert torch.allclose(model(batch)[:, 0], model(other)[:, 0], atol=1e-5)


# ---------------------------------------------------------------- the cached item table


def sgd_step(model: Recformer, lr: float = 0.5) -> None:
    batch = make_batch()
    torch.nn.functional.cross_entropy(model(batch), batch.target_pos).backward()
    with torch.no_grad():
        for p in model.parameters():
            if p.grad is not None:
                p -= lr * p.grad
                p.grad = None


def test_eval_scores_follow_a_weight_update(tiny_text_model, item_categories):
    """After an update, eval-mode scores are those of a fresh model holding the new weights."""
    model = tiny(tiny_text_model, item_categories)
    batch = make_batch(b=3)
    before = model(batch)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.train()
    torch.nn.functional.cross_entropy(model(batch), batch.target_pos).backward()
    optimizer.step()
    model.eval()
    after = model(batch)
    fresh = tiny(tiny_text_model, item_categories)
    fresh.load_state_dict(model.state_dict())
    assert not torch.allclose(before, after, atol=1e-4)
    assert torch.allclose(after, fresh(batch), atol=1e-5)
    assert torch.allclose(model.item_repr(torch.arange(N_ITEMS + 1)), fresh.item_repr(torch.arange(N_ITEMS + 1)))


def test_load_state_dict_refreshes_the_table(tiny_text_model, item_categories):
    model, other = tiny(tiny_text_model, item_categories), tiny(tiny_text_model, item_categories)
    sgd_step(other.train())
    other.eval()
    model.item_table()  # cached for the old weights
    model.load_state_dict(other.state_dict())
    assert torch.allclose(model.item_table(), other.item_table())


def test_training_keeps_the_table_for_the_pass_and_refreshes_it_on_the_next(tiny_text_model, item_categories):
    model = tiny(tiny_text_model, item_categories).train()
    first = model.item_table()
    sgd_step(model)
    assert model.item_table() is first                  # fixed during the pass, as in Recformer
    model.train()                                       # the next epoch
    refreshed = model.item_table()
    assert refreshed is not first and not torch.allclose(refreshed, first)
    model.eval()
    assert model.item_table() is refreshed              # no weight change since: nothing re-encoded


def test_the_table_is_encoded_without_dropout_or_gradients(tiny_text_model, item_categories):
    model = tiny(tiny_text_model, item_categories, dropout=0.5).train()
    table = model.item_table()
    assert not table.requires_grad and model.text.training
    model.eval()
    model._table = None
    assert torch.allclose(model.item_table(), table, atol=1e-6)


# ---------------------------------------------------------------- freezing


def test_word_embeddings_are_frozen_by_default_and_layers_on_request(tiny_text_model, item_categories):
    model = tiny(tiny_text_model, item_categories)
    bert = model.text.model
    assert not bert.get_input_embeddings().weight.requires_grad
    assert bert.encoder.layer[0].attention.self.query.weight.requires_grad
    frozen = tiny(tiny_text_model, item_categories, freeze_layers=1)
    bert = frozen.text.model
    assert not bert.embeddings.position_embeddings.weight.requires_grad
    assert not bert.encoder.layer[0].output.dense.weight.requires_grad
    assert bert.encoder.layer[1].output.dense.weight.requires_grad
    assert frozen.text.item_position.weight.requires_grad  # Recformer's own embeddings always train
    thawed = tiny(tiny_text_model, item_categories, freeze_word_embeddings=False)
    assert thawed.text.model.get_input_embeddings().weight.requires_grad
    with pytest.raises(ValueError, match="freeze_layers=3.*2 layers"):
        tiny(tiny_text_model, item_categories, freeze_layers=3)


def test_max_tokens_must_fit_the_text_model(tiny_text_model, item_categories):
    with pytest.raises(ValueError, match="max_tokens=100 exceeds the text model's 64 positions"):
        tiny(tiny_text_model, item_categories, max_tokens=100)


# ---------------------------------------------------------------- pre-training and fitting


def test_masking_touches_only_text_tokens(tiny_text_model, item_categories):
    model = tiny(tiny_text_model, item_categories)
    batch = model.inputs.users(make_batch(b=4).history)
    masked, labels = mask_tokens(batch, model.mask_token_id, 100, 0.5, torch.Generator().manual_seed(0))
    text = (batch.types != SPECIAL) & (batch.mask > 0)
    assert (labels[~text] == -100).all() and (labels[text] != -100).any()
    assert torch.equal(labels[labels != -100], batch.ids[labels != -100])
    assert torch.equal(masked.ids[~text], batch.ids[~text])
    assert (masked.ids[labels != -100] == model.mask_token_id).float().mean() > 0.5


def prepared_lists(prepared_dir: Path, folder: Path, **overrides):
    from ur4rec.train.catalog import read_catalog

    prepared = prepared_dir / "clusters" / "prepared"
    catalog = read_catalog(prepared / "items.parquet", with_texts=True)
    torch.manual_seed(0)
    model = build("recformer", tiny_cfg(folder, **overrides), catalog)
    train, valid = (RerankData.from_parquet(prepared / f"{s}.parquet", model.history_len, catalog.n_items)
                    for s in ("train", "valid"))
    return model, train, valid


def test_pretraining_runs_only_when_asked_and_lowers_its_loss(prepared_dir, tiny_text_model):
    model, train, _ = prepared_lists(prepared_dir, tiny_text_model)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    model.before_fit(train)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in start.items())
    model, train, _ = prepared_lists(prepared_dir, tiny_text_model, pretrain=True, pretrain_epochs=2,
                                     pretrain_lr=3e-3, pretrain_batch_size=32)
    small = RerankData(*(t[:64] for t in (train.user_ids, train.history, train.candidates, train.target_pos,
                                          train.sample_ids)))
    losses = pretrain(model, small)
    assert len(losses) == 2 and losses[-1] < losses[0] - 0.1
    model.eval()
    assert not any(torch.equal(v, model.state_dict()[k]) for k, v in start.items() if "encoder.layer.1." in k)


def test_fit_reduces_the_training_loss(prepared_dir, tiny_text_model, tmp_path):
    model, train, valid = prepared_lists(prepared_dir, tiny_text_model)
    cfg = TrainConfig(epochs=2, patience=2, batch_size=64, lr=3e-3, progress=False, threads=1)
    result = fit(model, RerankTask(train, valid), cfg, tmp_path)
    losses = [h["train_loss"] for h in result.history]
    assert losses[-1] < losses[0] - 0.1
