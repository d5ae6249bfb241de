"""The text pieces the runs layer hands out are the stage's own: its encoder, its texts, its store."""

from __future__ import annotations

import torch

from tests.conftest import dataset_entry, settings
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
