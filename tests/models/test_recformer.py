"""Recformer on a tiny real BERT (random weights, the packaged MiniLM tokenizer): text inputs, the backbone
contract, the cached item table, freezing, pre-training and a short fit."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from tests.models.conftest import N_CATEGORIES, N_ITEMS, make_batch
from ur4rec.models import build, entry
from ur4rec.models.catalog import ItemCatalog
from ur4rec.models.recformer import MissingItemTexts, Recformer, TextModelError
from ur4rec.models.recformer_pretrain import RecformerPretrainTask, mask_tokens, pretraining
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


def first(data: RerankData, n: int) -> RerankData:
    return RerankData(*(t[:n] for t in (data.user_ids, data.history, data.candidates, data.target_pos,
                                         data.sample_ids)))


PRETRAIN = {"pretrain": True, "pretrain_epochs": 2, "pretrain_lr": 3e-3, "pretrain_batch_size": 16}


def pretrain_parts(prepared_dir: Path, folder, seed: int = 0, **overrides):
    """A Recformer, and what fits its pre-training, on 64 training and 32 validation lists."""
    model, train, valid = prepared_lists(prepared_dir, folder, **(PRETRAIN | overrides))
    module, task, loop = pretraining(model, first(train, 64), first(valid, 32), seed)
    return model, module, task, replace(TrainConfig(seed=seed, progress=False, threads=1), **loop)


def encoder_weights(model: Recformer) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.text.state_dict().items()}


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_pretraining_is_a_task_of_the_loop_and_lowers_its_validation_loss(prepared_dir, tiny_text_model, tmp_path):
    model, module, task, cfg = pretrain_parts(prepared_dir, tiny_text_model)
    assert (cfg.epochs, cfg.lr, cfg.batch_size, cfg.select_metric, task.select_mode) == (2, 3e-3, 16, "loss", "min")
    trainable = {id(p) for p in module.parameters() if p.requires_grad}
    expected = [p for p in model.text.parameters() if p.requires_grad] + [*module.head.transform.parameters(),
                                                                         module.head.bias]
    assert trainable == {id(p) for p in expected}
    assert not module.head.state_dict().keys() & {"word_embeddings.weight"}  # tied, held by the encoder alone
    start_valid = task.validate(module)
    start = encoder_weights(model)
    result = fit(module, task, cfg, tmp_path)
    assert result.epochs_run == 2 and {"train_contrastive", "train_mlm", "valid_hit@1"} <= result.history[0].keys()
    assert result.best_valid == min(h["valid_loss"] for h in result.history) < start_valid["loss"] - 0.1
    assert task.validate(module)["loss"] == pytest.approx(result.best_valid)
    trained = encoder_weights(model)  # the Recformer itself holds the selected pre-trained weights
    assert not any(torch.equal(v, trained[k]) for k, v in start.items() if "encoder.layer.1." in k)


@pytest.mark.slow
def test_pretraining_the_packaged_minilm_lowers_its_validation_loss(prepared_dir, tmp_path):
    from ur4rec.packaged import PackagedModelMissing, minilm_dir

    try:
        minilm_dir()
    except PackagedModelMissing as exc:
        pytest.skip(str(exc))
    model, module, task, cfg = pretrain_parts(prepared_dir, "packaged:minilm", pretrain_lr=1e-4, pretrain_epochs=1)
    start = task.validate(module)
    result = fit(module, task, cfg, tmp_path)
    assert result.best_epoch == 0 and result.best_valid < start["loss"] - 0.5
    assert result.history[0]["valid_contrastive"] < start["contrastive"]


def test_pretraining_batches_carry_their_masks_and_split_by_rows(prepared_dir, tiny_text_model):
    _, _, task, _ = pretrain_parts(prepared_dir, tiny_text_model)
    one, again = next(task.batches(16, seed=3)), next(task.batches(16, seed=3))
    assert torch.equal(one.masked.ids, again.masked.ids) and torch.equal(one.targets, again.targets)
    assert not torch.equal(one.masked.ids, next(task.batches(16, seed=4)).masked.ids)
    part = one.rows(slice(4, 8))
    assert len(part) == 4 and torch.equal(part.targets, one.targets[4:8])
    width = part.users.ids.shape[1]
    assert width == int(one.users.mask[4:8].sum(1).max()) and part.labels.shape == (4, width)
    assert torch.equal(part.masked.ids, one.masked.ids[4:8, :width]) and (one.users.mask[4:8, width:] == 0).all()


def test_pretraining_is_repeatable_by_seed(prepared_dir, tiny_text_model, tmp_path):
    runs = []
    for seed in (0, 0, 5):
        model, module, task, cfg = pretrain_parts(prepared_dir, tiny_text_model, seed=seed, pretrain_epochs=1)
        fit(module, task, cfg, tmp_path / str(len(runs)))
        runs.append({k: v.clone() for k, v in module.state_dict().items()})
    assert same(runs[0], runs[1])
    assert not same(runs[0], runs[2])


def test_interrupted_pretraining_resumes_to_the_same_model(prepared_dir, tiny_text_model, tmp_path, monkeypatch):
    model, module, task, cfg = pretrain_parts(prepared_dir, tiny_text_model)
    fit(module, task, cfg, tmp_path / "straight")
    expected = {k: v.clone() for k, v in module.state_dict().items()}

    calls = {"n": 0}
    real_validate = RecformerPretrainTask.validate

    def crash_in_second_epoch(self, model):  # a kill after the first epoch
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real_validate(self, model)

    state = tmp_path / "state"
    model, module, task, cfg = pretrain_parts(prepared_dir, tiny_text_model)
    monkeypatch.setattr(RecformerPretrainTask, "validate", crash_in_second_epoch)
    with pytest.raises(KeyboardInterrupt):
        fit(module, task, cfg, tmp_path / "resumed", state_dir=state)
    assert json.loads((state / "state.json").read_text())["epoch"] == 1
    monkeypatch.setattr(RecformerPretrainTask, "validate", real_validate)
    model, module, task, cfg = pretrain_parts(prepared_dir, tiny_text_model)  # a fresh process
    result = fit(module, task, cfg, tmp_path / "resumed", state_dir=state)
    assert result.resumed_from_epoch == 1 and result.epochs_run == 2
    assert same({k: v.clone() for k, v in module.state_dict().items()}, expected)
    assert not state.exists()


def test_the_runner_pretrains_only_when_asked_and_not_before_a_resumed_training(prepared_dir, tiny_text_model,
                                                                               tmp_path):
    from tests.conftest import dataset_entry, settings
    from ur4rec.runs.spec import RunSpec
    from ur4rec.runs.training import RunParts, pretrain_backbone
    from ur4rec.train.resume import LoopState, fingerprint

    def parts(**overrides) -> RunParts:
        model, train, valid = prepared_lists(prepared_dir, tiny_text_model, **overrides)
        s = settings(dataset_entry("clusters"), "datasets=[clusters]", "backbones=[recformer]",
                     *(f"backbone.recformer.{k}={v}" for k, v in overrides.items()))
        cfg = TrainConfig(seed=0, progress=False, threads=1, lr=1e-3)
        return RunParts(model, None, RerankTask(first(train, 32), first(valid, 16)), cfg,
                        s.resolve(RunSpec("clusters", "recformer", None, 0), tmp_path))

    run = parts()
    paths = run.run.paths
    start = encoder_weights(run.model)
    assert pretrain_backbone(run) is None and same(encoder_weights(run.model), start)
    run = parts(**PRETRAIN | {"pretrain_epochs": 1})
    result = pretrain_backbone(run)
    assert result.epochs_run == 1 and not same(encoder_weights(run.model), start)
    assert not paths.backbone_pretrain_resume.exists()
    # the training's own resume state holds the weights: no pre-training before it resumes
    run = parts(**PRETRAIN | {"pretrain_epochs": 1})
    paths.resume.mkdir(parents=True)
    state = LoopState(fingerprint=fingerprint(run.cfg, run.model, run.task.identity()))
    (paths.resume / "state.json").write_text(json.dumps(state.__dict__))
    assert pretrain_backbone(run) is None and same(encoder_weights(run.model), start)
    # a state the training will not reuse (another configuration) does not stop it
    (paths.resume / "state.json").write_text(json.dumps(state.__dict__ | {"fingerprint": "other"}))
    assert pretrain_backbone(run) is not None


def test_fit_reduces_the_training_loss(prepared_dir, tiny_text_model, tmp_path):
    model, train, valid = prepared_lists(prepared_dir, tiny_text_model)
    cfg = TrainConfig(epochs=2, patience=2, batch_size=64, lr=3e-3, progress=False, threads=1)
    result = fit(model, RerankTask(train, valid), cfg, tmp_path)
    losses = [h["train_loss"] for h in result.history]
    assert losses[-1] < losses[0] - 0.1


def test_a_base_run_pretrains_then_fine_tunes_and_a_resumed_one_does_not_pretrain_again(
        tiny_text_model, tmp_path, monkeypatch):
    from tests.conftest import dataset_entry, settings
    from tests.models.prepared import write_prepared
    from ur4rec.models import recformer_pretrain
    from ur4rec.runs.spec import RunSpec
    from ur4rec.runs.training import train

    root = tmp_path / "data"
    write_prepared(root / "clusters" / "prepared", samples={"train": 96, "valid": 32, "test": 8})
    s = settings(dataset_entry("clusters"), "datasets=[clusters]", "backbones=[recformer]", "train.epochs=2",
                 "train.patience=2", "train.batch_size=64", "train.progress=false", "train.threads=1",
                 f"backbone.recformer.text_model={tiny_text_model}", "backbone.recformer.max_tokens=48",
                 "backbone.recformer.history_items=6", "backbone.recformer.lr=1e-3", "backbone.recformer.pretrain=true",
                 "backbone.recformer.pretrain_lr=3e-3", "backbone.recformer.pretrain_batch_size=32")
    spec = RunSpec("clusters", "recformer", None, 0)
    paths = spec.paths(root)
    calls = []
    real_pretraining = recformer_pretrain.pretraining
    monkeypatch.setattr(recformer_pretrain, "pretraining", lambda *a: calls.append(a[3]) or real_pretraining(*a))
    straight = train(s, spec, root)
    assert calls == [0] and not paths.backbone_pretrain_resume.exists() and not paths.resume.exists()
    expected = (paths.train / "model.safetensors").read_bytes()

    real_validate = RerankTask.validate
    monkeypatch.setattr(RerankTask, "validate", lambda *a: (_ for _ in ()).throw(KeyboardInterrupt)
                        if (paths.resume / "state.json").exists() else real_validate(*a))
    with pytest.raises(KeyboardInterrupt):  # killed in the fine-tuning's second epoch
        train(s, spec, root)
    monkeypatch.setattr(RerankTask, "validate", real_validate)
    assert calls == [0, 0]
    resumed = train(s, spec, root)
    assert calls == [0, 0] and resumed.resumed_from_epoch == 1
    assert [h["valid_ndcg@10"] for h in resumed.history] == [h["valid_ndcg@10"] for h in straight.history]
    assert (paths.train / "model.safetensors").read_bytes() == expected
