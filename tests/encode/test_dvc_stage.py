"""The encode stage under a real `dvc repro` after fetch, prepare and generation, in a throw-away repo."""

from __future__ import annotations

import json
import shutil

import pyarrow.parquet as pq
import pytest

from tests.conftest import REPO_ROOT
from tests.fixtures.raw import write_ml100k
from tests.llm.helpers import FIXTURE, PREPARE, build_llama
from ur4rec.encode.store import KINDS, EmbeddingStore

pytestmark = pytest.mark.slow
CHAIN = ["encode@ml-100k", "fetch@ml-100k", "generate@ml-100k", "prepare@ml-100k"]


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory):
    """A 2-layer random Llama with SmolLM2's tokenizer: the real generation stage, in seconds."""
    from ur4rec.llm.models import resolve_model

    return build_llama(tmp_path_factory.mktemp("tiny-llama"), resolve_model("packaged:smollm2").source)


def test_encode_runs_after_generation_then_is_a_no_op(dvc_project, tiny_llama):
    project = dvc_project(
        "datasets=[ml-100k]", *PREPARE, "llm.backend=transformers", f"llm.model={tiny_llama}", "llm.dtype=float32",
        "llm.sampling.max_new_tokens=4", "llm.structured=false", "llm.batch_size=32", "encoder.threads=1",
    )
    if (REPO_ROOT / ".dvcignore").exists():  # bytecode written by the stages must not count as a code change
        shutil.copy2(REPO_ROOT / ".dvcignore", project.root / ".dvcignore")
    write_ml100k(project.root / "mirror" / "ml-100k", **FIXTURE)
    assert project.ran_stages(project.repro("encode@ml-100k")) == CHAIN

    data = project.root / "data" / "ml-100k"
    store = EmbeddingStore(data / "emb")
    store.verify()
    assert store.kinds == sorted(KINDS) and store.dim == 384
    n_users = pq.read_metadata(data / "prepared" / "users.parquet").num_rows
    n_items = pq.read_metadata(data / "prepared" / "items.parquet").num_rows
    assert len(store.ids("user_pref")) == len(store.ids("user_text")) == n_users
    assert store.table("item_know", size=n_items + 1).shape == (n_items + 1, 384)
    # Every generation is either encoded or replaced by the policy, and the report says which.
    report = json.loads((data / "encode_report.json").read_text())
    statuses = pq.read_table(data / "llm" / "user_preferences.parquet", columns=["status"]).column("status").to_pylist()
    bad = sum(s in ("empty", "degenerate", "failed") for s in statuses)
    assert report["kinds"]["user_pref"]["replaced_total"] >= bad
    # Encoding the same texts again, in a new process and every vector from the cache, writes the same bytes:
    # DVC then sees the same store, and no stage downstream of it reruns.
    before = {f.name: f.read_bytes() for f in (data / "emb").iterdir()}
    assert project.ran_stages(project.repro("--force", "--single-item", "encode@ml-100k")) == ["encode@ml-100k"]
    assert {f.name: f.read_bytes() for f in (data / "emb").iterdir()} == before
    assert json.loads((data / "encode_report.json").read_text())["texts"]["encoded"] == 0

    assert project.ran_stages(project.repro("encode@ml-100k")) == []
    project.set_params("train.epochs=3")  # not read by encode
    assert project.ran_stages(project.repro("encode@ml-100k")) == []
    project.set_params("encoder.storage_dtype=fp16")
    assert project.ran_stages(project.repro("encode@ml-100k")) == ["encode@ml-100k"]
    assert EmbeddingStore(data / "emb").meta["dtype"] == "fp16"
    assert json.loads((data / "encode_report.json").read_text())["texts"]["encoded"] == 0  # all from the cache
