"""The frozen encoder on the real packaged all-MiniLM-L6-v2, plus its pure batching/pooling helpers."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from transformers import AutoModel, AutoTokenizer

from ur4rec.config import ParamsError, section
from ur4rec.encode.config import EncoderConfig
from ur4rec.encode.encoder import (
    EncoderError, FrozenEncoder, length_batches, model_fingerprint, pad_batch, pool, torch_threads,
)
from ur4rec.packaged import minilm_dir

# Realistic mixture: LLM-style preference prose of different lengths and short item texts.
TEXTS = [
    "Heat (1995). Categories: Action, Crime, Thriller.",
    "The user is drawn to character-driven dramas with moral ambiguity, enjoys slow-burn crime stories set in "
    "big cities, rates classic films from the seventies highly, and tends to avoid broad slapstick comedies "
    "and children's animation. They appreciate strong ensemble casts and memorable scores.",
    "Amélie (2001). Categories: Comedy, Romance.",
    "Loves space operas.",
    "This user prefers light romantic comedies, musicals and feel-good family films; violent thrillers and "
    "horror are rated low.",
    'The "Great" Escape (1963). Categories: Adventure, War.',
    "Star Wars (1977). Categories: Action, Adventure, Sci-Fi. " * 6,
    "Fargo (1996)",
]


def cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.cosine_similarity(a, b, dim=-1)


@pytest.fixture(scope="module")
def minilm_fp32() -> FrozenEncoder:
    return FrozenEncoder(EncoderConfig(dtype="fp32", batch_size=3, batch_tokens=200, threads=1))


def test_minilm_returns_one_384_vector_per_text_in_input_order(minilm):
    batched = minilm.encode(TEXTS, progress=False)
    alone = torch.cat([minilm.encode([t], progress=False) for t in TEXTS])
    assert batched.shape == (len(TEXTS), 384) and batched.dtype == torch.float32
    assert torch.isfinite(batched).all()
    # Sorting by length and padding per batch must not move or change any text's vector.
    assert cosine(batched, alone).min() > 0.999
    assert cosine(batched[0], batched[1]) < 0.9  # different texts, different vectors


def test_mean_pooling_matches_a_plain_unpadded_forward(minilm_fp32):
    tokenizer = AutoTokenizer.from_pretrained(minilm_dir())
    model = AutoModel.from_pretrained(minilm_dir()).eval()
    with torch.no_grad(), torch_threads(1):
        states = [model(**tokenizer(t, return_tensors="pt")).last_hidden_state[0] for t in TEXTS]
        reference = torch.stack([s.mean(0) for s in states])
    ours = minilm_fp32.encode(TEXTS, progress=False)
    torch.testing.assert_close(ours, reference, atol=2e-5, rtol=1e-4)


def test_cls_pooling_is_the_first_token_state():
    enc = FrozenEncoder(EncoderConfig(dtype="fp32", pooling="cls", threads=1))
    tokenizer = AutoTokenizer.from_pretrained(minilm_dir())
    with torch.no_grad(), torch_threads(1):
        reference = enc.model(**tokenizer(TEXTS[1], return_tensors="pt")).last_hidden_state[0, 0]
    torch.testing.assert_close(enc.encode([TEXTS[1]], progress=False)[0], reference, atol=2e-5, rtol=1e-4)


def test_bf16_agrees_with_fp32(minilm_fp32):
    bf16 = FrozenEncoder(EncoderConfig(dtype="bf16", batch_size=4, batch_tokens=128, threads=1))
    assert bf16.model.dtype == torch.bfloat16
    sims = cosine(bf16.encode(TEXTS, progress=False), minilm_fp32.encode(TEXTS, progress=False))
    assert sims.min() >= 0.999, sims


def test_vectors_carry_meaning(minilm):
    space, scifi, romance = minilm.encode(
        ["The user loves space operas and science fiction adventures.",
         "Star Wars (1977). Categories: Action, Adventure, Sci-Fi.",
         "Sleepless in Seattle (1993). Categories: Comedy, Romance."], progress=False)
    assert cosine(space, scifi) > cosine(space, romance)


def test_normalize_gives_unit_vectors():
    enc = FrozenEncoder(EncoderConfig(normalize=True, threads=1))
    norms = enc.encode(TEXTS[:3], progress=False).norm(dim=-1)
    torch.testing.assert_close(norms, torch.ones(3))


def test_length_batches_cover_every_index_once_longest_first():
    lengths = [5, 1, 9, 3, 9, 2, 7]
    batches = length_batches(lengths, max_texts=3, max_tokens=1000)
    flat = [int(i) for b in batches for i in b]
    assert sorted(flat) == list(range(len(lengths)))
    assert [lengths[i] for i in flat] == sorted(lengths, reverse=True)
    assert [len(b) for b in batches] == [3, 3, 1]


def test_length_batches_respect_the_token_budget():
    lengths = [256] * 4 + [10] * 100
    batches = length_batches(lengths, max_texts=64, max_tokens=512)
    assert [len(b) for b in batches] == [2, 2, 51, 49]  # long texts two at a time, short ones 51 (510 tokens)
    for batch in batches:
        assert len(batch) * max(lengths[i] for i in batch) <= 512
    assert [len(b) for b in length_batches([600], max_texts=8, max_tokens=512)] == [1]  # never an empty batch


def test_pad_batch_pads_to_the_longest_in_the_batch_only():
    ids, mask = pad_batch([[101, 7, 102], [101, 102]], pad_id=0)
    assert ids.tolist() == [[101, 7, 102], [101, 102, 0]]
    assert mask.tolist() == [[1, 1, 1], [1, 1, 0]]


def test_mean_pool_ignores_padding():
    hidden = torch.tensor([[[1.0, 1.0], [3.0, 3.0], [100.0, 100.0]]])
    mask = torch.tensor([[1, 1, 0]])
    assert pool(hidden, mask, "mean").tolist() == [[2.0, 2.0]]
    assert pool(hidden, mask, "cls").tolist() == [[1.0, 1.0]]


def test_fingerprint_tracks_what_changes_vectors_only():
    base = EncoderConfig(dtype="bf16")
    fp = model_fingerprint(base, minilm_dir())
    for change in ({"pooling": "cls"}, {"max_length": 128}, {"dtype": "fp32"}, {"normalize": True}):
        assert model_fingerprint(EncoderConfig(**{"dtype": "bf16", **change}), minilm_dir()) != fp, change
    for change in ({"batch_size": 7}, {"batch_tokens": 99}, {"threads": 1}, {"device": "auto"},
                   {"storage_dtype": "fp16"}, {"on_bad_generation": "zero"}):
        assert model_fingerprint(EncoderConfig(**{"dtype": "bf16", **change}), minilm_dir()) == fp, change
    # `auto` is keyed by what it resolves to on this machine, never by the word.
    resolved = EncoderConfig(dtype="auto").resolved_dtype
    assert model_fingerprint(EncoderConfig(dtype="auto"), minilm_dir()) == model_fingerprint(EncoderConfig(dtype=resolved), minilm_dir())


def test_fingerprint_changes_with_the_weights(tmp_path):
    copy = tmp_path / "model"
    shutil.copytree(minilm_dir(), copy)
    before = model_fingerprint(EncoderConfig(), copy)
    config = json.loads((copy / "config.json").read_text())
    config["layer_norm_eps"] = 1e-6
    (copy / "config.json").write_text(json.dumps(config))
    assert model_fingerprint(EncoderConfig(), copy) != before


def test_refuses_a_model_without_safetensors_weights(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"hidden_size": 8}))
    (tmp_path / "pytorch_model.bin").write_bytes(b"pickle")
    with pytest.raises(EncoderError, match="safetensors"):
        FrozenEncoder(EncoderConfig(model=str(tmp_path)))


def test_rejects_max_length_beyond_the_model_positions():
    with pytest.raises(EncoderError, match="512 positions"):
        FrozenEncoder(EncoderConfig(max_length=1024))


def test_unknown_packaged_model_is_a_clear_error():
    with pytest.raises(EncoderError, match="packaged:nope"):
        FrozenEncoder(EncoderConfig(model="packaged:nope"))


@pytest.mark.parametrize("bad", [
    {"pooling": "max"}, {"dtype": "int8"}, {"on_bad_generation": "drop"}, {"bad_statuses": ["ok"]}, {"batch_size": 0},
    {"batch_tokens": 0}, {"threads": -1}, {"storage_dtype": "bf16"}, {"bogus": 1},
])
def test_config_rejects_bad_params(bad):
    with pytest.raises(ParamsError, match="encoder"):
        section(EncoderConfig, bad, "encoder")


def test_thread_setting_is_scoped():
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with torch_threads(0):
        assert torch.get_num_threads() == before
