"""Fixtures for the retriever tests: tiny BERT checkpoints written by transformers itself."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
import torch

from ur4rec.retriever.config import ArchConfig
from ur4rec.retriever.model import Retriever


@contextlib.contextmanager
def one_torch_thread():
    """Tiny models run fastest on one thread, and on a busy CI machine extra OpenMP threads spin for nothing."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    with one_torch_thread():
        yield


TINY = dict(hidden_size=32, num_attention_heads=4, intermediate_size=64, num_hidden_layers=3, vocab_size=60,
            max_position_embeddings=32)


def save_tiny_bert(folder: Path, with_head: bool = False, seed: int = 0) -> Path:
    """A 3-layer, width-32 BERT saved as safetensors; `with_head` saves BertForMaskedLM (keys under `bert.`)."""
    from transformers import BertConfig, BertForMaskedLM, BertModel

    torch.manual_seed(seed)
    cls = BertForMaskedLM if with_head else BertModel
    model = cls(BertConfig(**TINY))
    model.save_pretrained(folder, safe_serialization=True)
    return folder


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    return save_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


def make_retriever(folder: Path, n_proxies: int = 4, n_layers: int = 2, h_dim: int = 8, z_dim: int = 16,
                   **arch) -> Retriever:
    torch.manual_seed(1)
    cfg = ArchConfig(init_checkpoint=str(folder), n_layers=n_layers, dropout=0.0, **arch)
    return Retriever(cfg, n_proxies, h_dim, z_dim).eval()


def inputs(b: int = 2, n_items: int = 5, m: int = 6, h_dim: int = 8, z_dim: int = 16, seed: int = 2):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(b, n_items, h_dim, generator=g)
    z = torch.randn(b, m, z_dim, generator=g)
    z_mask = torch.ones(b, m, dtype=torch.bool)
    z_mask[0, -2:] = False  # some padded keys
    return h, z, z_mask


# ---------------------------------------------------------------- a tiny prepared dataset with a Base run

Z_DIM = 16


def tiny_params(bert_folder: Path, *overrides: str) -> dict:
    """The repository's params, shrunk: dataset `fx`, tiny BERT init, tiny backbones, 2 epochs, no bars."""
    from tests.conftest import REPO_ROOT
    from ur4rec.config import apply_override, load_params

    params = load_params(REPO_ROOT / "params.yaml", ["prepare.n_candidates=20", "prepare.eval_samples_per_user=3",
                                                      "prepare.train_samples_per_user=5", "prepare.llm_history_len=5"])
    params["dataset"]["fx"] = {"format": "ml-100k", "domain": "movie", "raw_name": "fx", "category": None,
                               "min_rating": 0, "k_core": 5}
    params["datasets"], params["backbones"], params["seeds"] = ["fx"], ["prm", "gru4rec"], [0]
    params["backbone"] = {"prm": {"dim": 16, "history_len": 10, "max_candidates": 20, "lr": 3e-3},
                          "gru4rec": {"dim": 16, "history_len": 20, "lr": 3e-3}}
    params["train"] = {"epochs": 2, "batch_size": 16, "eval_batch_size": 64, "progress": False, "threads": 1}
    for item in (f"retriever.arch.init_checkpoint={bert_folder}", "retriever.arch.n_layers=2",
                 "retriever.arch.dropout=0.0", "retriever.pretrain.epochs=2", "retriever.pretrain.batch_size=16",
                 "retriever.pretrain.lr=1e-3", "retriever.per_backbone.prm.n_proxies=4",
                 "retriever.per_backbone.gru4rec={n_proxies: 4, z_history: 20}", "retriever.joint.threads=1",
                 # the warm start, which most tests here are about (the shipped from-scratch PRM: test_joint.py)
                 "retriever.per_backbone.prm.joint={}",
                 "variant.kar.kar={n_shared: 1, n_dedicated: 1, hidden: 16, out_dim: 8, dropout: 0.0}", *overrides):
        apply_override(params, item)
    return params


def tiny_settings(bert_folder: Path, *overrides: str):
    from ur4rec.runs.settings import parse_settings

    return parse_settings(tiny_params(bert_folder, *overrides))


def write_fixture_store(prepared: Path, out: Path, seed: int = 0) -> None:
    """An embedding store with learnable structure: an item's knowledge vector is a fixed random vector, a
    user's preference vector the mean of the knowledge of the items the LLM saw (their `llm_history`)."""
    import numpy as np
    import pyarrow.parquet as pq

    from ur4rec.encode.store import KindVectors, write_store

    g = torch.Generator().manual_seed(seed)
    n_items = pq.read_table(prepared / "items.parquet", columns=["item_id"]).num_rows
    users = pq.read_table(prepared / "users.parquet", columns=["user_id", "llm_history"]).to_pylist()
    know = torch.randn(n_items + 1, Z_DIM, generator=g)
    pref = torch.stack([know[torch.tensor(u["llm_history"] or [0])].mean(0) for u in users])
    item_ids = np.arange(1, n_items + 1)
    user_ids = np.array([u["user_id"] for u in users])
    kinds = {
        "item_know": KindVectors(item_ids, know[1:]),
        "item_text": KindVectors(item_ids, know[1:] + 0.5 * torch.randn(n_items, Z_DIM, generator=g)),
        "user_pref": KindVectors(user_ids, pref),
        "user_text": KindVectors(user_ids, pref + 0.5 * torch.randn(len(users), Z_DIM, generator=g)),
    }
    write_store(out, kinds, {"encoder": {"fingerprint": "fixture"}})


@pytest.fixture(scope="session")
def tiny_project(tmp_path_factory, tiny_bert):
    """`(root, settings)`: data root with dataset `fx` prepared, encoded, and Base-trained (seed 0) for prm
    and gru4rec."""
    from tests.fixtures.raw import write_ml100k
    from ur4rec.paths import DatasetPaths
    from ur4rec.runs import data, training
    from ur4rec.runs.spec import RunSpec

    root = tmp_path_factory.mktemp("data")
    paths = DatasetPaths("fx", root)
    settings = tiny_settings(tiny_bert)
    raw = write_ml100k(tmp_path_factory.mktemp("raw") / "fx", n_users=40, n_items=60, per_user=25)
    data.prepare(settings, "fx", raw_dir=raw, root=root)
    write_fixture_store(paths.prepared, paths.emb)
    with one_torch_thread():
        for backbone in ("prm", "gru4rec"):
            training.train(settings, RunSpec("fx", backbone, None, 0), root)
    return root, settings
