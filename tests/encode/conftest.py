"""Fixtures for the encode tests: the real packaged MiniLM, loaded once, and a tiny dataset on disk."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from transformers import BertConfig, BertModel

from tests.encode.helpers import write_llm, write_prepared
from ur4rec.encode.config import EncoderConfig
from ur4rec.encode.encoder import FrozenEncoder
from ur4rec.packaged import minilm_dir
from ur4rec.paths import DatasetPaths

TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


@pytest.fixture(scope="session")
def minilm_cfg() -> EncoderConfig:
    # Several batches of mixed lengths even for a few texts; one thread, as the test machines are busy.
    return EncoderConfig(batch_size=4, batch_tokens=128, threads=1)


@pytest.fixture(scope="session")
def minilm(minilm_cfg) -> FrozenEncoder:
    """The real packaged all-MiniLM-L6-v2, loaded once for the whole session."""
    return FrozenEncoder(minilm_cfg)


@pytest.fixture
def dataset_paths(tmp_path: Path) -> DatasetPaths:
    paths = DatasetPaths("tiny", tmp_path / "data")
    write_prepared(paths)
    write_llm(paths)
    return paths


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> str:
    """A randomly initialised 2-layer, 32-wide BERT with MiniLM's tokenizer: a real transformers model that
    loads and runs in milliseconds, for tests about plumbing rather than meaning."""
    root = tmp_path_factory.mktemp("tiny-bert")
    torch.manual_seed(0)
    config = BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                        max_position_embeddings=512)
    BertModel(config).save_pretrained(root)
    for name in TOKENIZER_FILES:
        shutil.copy2(minilm_dir() / name, root / name)
    return str(root)
