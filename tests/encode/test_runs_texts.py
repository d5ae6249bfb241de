"""The text pieces the runs layer hands out are the stage's own: its encoder, its texts, its store."""

from __future__ import annotations

import json

import torch

from tests.conftest import dataset_entry, settings
from tests.encode.helpers import write_llm
from ur4rec.runs import encoding as texts


def test_the_texts_to_encode_are_those_the_stage_encodes(dataset_paths, tiny_bert):
    s = settings(dataset_entry("tiny"), f"encoder.model={tiny_bert}", "encoder.cache=false", "encoder.threads=1")
    wanted = texts.texts_to_encode(s, "tiny", dataset_paths.root)
    report = texts.encode(s, "tiny", dataset_paths.root, progress=False)
    assert len(wanted) == len(set(wanted)) == report["texts"]["unique"] and all(t.strip() for t in wanted)
    encoder = texts.encoder(s)
    store = texts.embedding_store("tiny", dataset_paths.root)
    assert encoder.dim == store.dim
    first_item = store.get("item_text", torch.tensor([1]))
    torch.testing.assert_close(first_item, encoder.encode([wanted[0]], progress=False), atol=1e-2, rtol=0)


def test_each_generation_gets_its_own_store_and_a_smaller_count_removes_the_extra(dataset_paths, tiny_bert):
    """Generation 1's texts (written here as the generate stage would) encode into emb_generations/1/emb; the
    raw-text vectors are the same in both stores, the LLM vectors follow their own generation's texts."""
    second = dataset_paths.of_generation(1)
    write_llm(second, user_status={2: "degenerate"})  # generation 1 differs from 0 in one user's answer
    s = settings(dataset_entry("tiny"), f"encoder.model={tiny_bert}", "encoder.cache=false", "encoder.threads=1",
                 "llm.generations=2")
    texts.encode(s, "tiny", dataset_paths.root, progress=False)
    first, other = (texts.embedding_store("tiny", dataset_paths.root, g) for g in (0, 1))
    assert other.path == dataset_paths.root / "tiny" / "emb_generations" / "1" / "emb"
    assert second.encode_report.exists() and "rerun `ur4rec encode --dataset tiny`" in other.rerun()
    users = torch.arange(1, 7)
    assert torch.equal(first.get("user_text", users), other.get("user_text", users))
    same = (first.get("user_pref", users) == other.get("user_pref", users)).all(-1)
    assert same.tolist() == [True, False, True, True, True, True]
    assert json.loads((dataset_paths.emb_generations / "generations.json").read_text())["generations"] == 2

    texts.encode(settings(dataset_entry("tiny"), f"encoder.model={tiny_bert}", "encoder.cache=false",
                          "encoder.threads=1"), "tiny", dataset_paths.root, progress=False)
    assert not (dataset_paths.emb_generations / "1").exists()
    assert json.loads((dataset_paths.emb_generations / "generations.json").read_text())["generations"] == 1
