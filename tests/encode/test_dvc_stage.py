"""The encode stage under a real `dvc repro`, downstream of prepare and generation, in a throw-away repo."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest
import yaml

from tests.encode.helpers import write_generations
from tests.fixtures.raw import write_ml100k
from ur4rec.encode.store import KINDS, EmbeddingStore
from ur4rec.paths import DatasetPaths

pytestmark = pytest.mark.slow


def has_generate_stage(project) -> bool:
    return "generate" in yaml.safe_load((project.root / "dvc.yaml").read_text())["stages"]


def write_llm_outputs(root, dataset: str) -> None:
    """What the generation stage writes, for every prepared user and item (one of each failed)."""
    paths = DatasetPaths(dataset, root / "data")
    users = pq.read_table(paths.prepared / "users.parquet", columns=["user_id"]).column("user_id").to_pylist()
    items = pq.read_table(paths.prepared / "items.parquet", columns=["item_id"]).column("item_id").to_pylist()
    for path, column, ids, text in ((paths.llm / "user_preferences.parquet", "user_id", users, "User {} likes crime dramas."),
                                    (paths.llm / "item_knowledge.parquet", "item_id", items, "Item {} is a thriller.")):
        statuses = ["failed"] + ["ok"] * (len(ids) - 1)
        write_generations(path, column, ids, [text.format(i) for i in ids], statuses)


def test_encode_runs_after_generation_then_is_a_no_op(dvc_project):
    # Generation is kept tiny (a few tokens) when the pipeline runs the real LLM stage.
    project = dvc_project("datasets=[ml-100k]", "prepare.n_candidates=20", "llm.sampling.max_new_tokens=8",
                          "llm.quality.max_retries=0")
    write_ml100k(project.root / "mirror" / "ml-100k")
    if has_generate_stage(project):
        ran = project.ran_stages(project.repro("encode@ml-100k"))
        assert ran == ["encode@ml-100k", "fetch@ml-100k", "generate@ml-100k", "prepare@ml-100k"]
    else:  # generation not in the pipeline: its outputs are written as that stage would write them
        project.repro("prepare@ml-100k")
        write_llm_outputs(project.root, "ml-100k")
        assert project.ran_stages(project.repro("encode@ml-100k")) == ["encode@ml-100k"]

    emb = project.root / "data" / "ml-100k" / "emb"
    store = EmbeddingStore(emb)
    store.verify()
    assert store.kinds == sorted(KINDS) and store.dim == 384
    n_items = pq.read_metadata(project.root / "data" / "ml-100k" / "prepared" / "items.parquet").num_rows
    assert store.table("item_know", size=n_items + 1).shape == (n_items + 1, 384)

    assert project.ran_stages(project.repro("encode@ml-100k")) == []
    project.set_params("train.epochs=3")  # not read by encode
    assert project.ran_stages(project.repro("encode@ml-100k")) == []
    project.set_params("encoder.storage_dtype=fp16")
    assert project.ran_stages(project.repro("encode@ml-100k")) == ["encode@ml-100k"]
    assert EmbeddingStore(emb).meta["dtype"] == "fp16"
