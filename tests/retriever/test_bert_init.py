"""Self-attention and FFN start as the checkpoint's first layers; cross-attention starts random."""

import pytest
import torch
from safetensors import safe_open

from tests.retriever.conftest import make_retriever, save_tiny_bert
from ur4rec.packaged import PackagedModelMissing, minilm_dir
from ur4rec.retriever.config import ArchConfig
from ur4rec.retriever.model import Block, Retriever


def _checkpoint(folder, prefix=""):
    with safe_open(str(folder / "model.safetensors"), framework="pt") as fh:
        return {k[len(prefix):]: fh.get_tensor(k) for k in fh.keys() if k.startswith(prefix)}


def _assert_blocks_equal_checkpoint(retriever, tensors):
    for i, block in enumerate(retriever.blocks):
        ours = block.state_dict()
        for bert_key, our_key in Block.BERT_KEYS.items():
            for leaf in ("weight", "bias"):
                assert torch.equal(ours[f"{our_key}.{leaf}"], tensors[f"encoder.layer.{i}.{bert_key}.{leaf}"]), (i, bert_key)


def test_initialised_weights_equal_the_checkpoint(tiny_bert):
    r = make_retriever(tiny_bert, n_layers=2)
    tensors = _checkpoint(tiny_bert)
    _assert_blocks_equal_checkpoint(r, tensors)
    # cross-attention is random: it equals no layer's self-attention
    cross_q = r.blocks[0].cross_attn.query.weight
    assert not any(torch.equal(cross_q, tensors[f"encoder.layer.{i}.attention.self.query.weight"]) for i in range(3))


def test_checkpoint_with_a_task_head_is_read_under_its_bert_prefix(tmp_path):
    folder = save_tiny_bert(tmp_path / "mlm", with_head=True, seed=3)
    r = make_retriever(folder, n_layers=3)
    _assert_blocks_equal_checkpoint(r, _checkpoint(folder, prefix="bert."))


def test_blocks_without_cross_attention_compute_what_bert_layers_compute(tiny_bert):
    from transformers import BertModel

    bert = BertModel.from_pretrained(tiny_bert).eval()
    r = make_retriever(tiny_bert, n_layers=2)
    x = torch.randn(3, 5, 32)
    ours = r._run(x, torch.ones(5, 5, dtype=torch.bool), None, None)
    theirs = x
    for layer in bert.encoder.layer[:2]:
        out = layer(theirs)
        theirs = out[0] if isinstance(out, tuple) else out
    assert torch.allclose(ours, theirs, atol=1e-5)


def test_too_many_layers_is_a_clear_error(tiny_bert):
    with pytest.raises(ValueError, match="n_layers=5 but the checkpoint has 3"):
        make_retriever(tiny_bert, n_layers=5)


def test_default_packaged_minilm_initialisation():
    try:
        folder = minilm_dir()
    except PackagedModelMissing as exc:
        pytest.skip(str(exc))
    r = Retriever(ArchConfig(n_layers=2), n_proxies=8, h_dim=64, z_dim=384)
    assert r.width == 384 and r.out_dim == 768
    _assert_blocks_equal_checkpoint(r, _checkpoint(folder))
