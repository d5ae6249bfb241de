"""The encode stage from typed settings: frozen-encoder vectors of the LLM and raw texts of a dataset, one store
per LLM generation (`llm.generations`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ur4rec.encode.encode import encode_dataset
from ur4rec.io import mark_generations
from ur4rec.paths import DATA_ROOT, DatasetPaths
from ur4rec.runs.text_settings import TextSettings


def encode(s: TextSettings, dataset: str, root: Path = DATA_ROOT, progress: bool = True) -> dict[str, Any]:
    """Every generation's store (the raw-text vectors are the same in each, from the encoder cache); returns
    the first's report."""
    paths = DatasetPaths(dataset, root)
    reports = [encode_dataset(s.encoder, paths.of_generation(g), progress) for g in range(s.llm.generations)]
    mark_generations(paths.emb_generations, s.llm.generations, {})
    return reports[0]


def encoder(s: TextSettings):
    """The encode stage's frozen encoder (`FrozenEncoder`; the model loads on first use)."""
    from ur4rec.encode.encoder import FrozenEncoder

    return FrozenEncoder(s.encoder)


def texts_to_encode(s: TextSettings, dataset: str, root: Path = DATA_ROOT) -> list[str]:
    """The distinct non-blank texts the encode stage encodes for `dataset`, in the order it meets them."""
    from ur4rec.encode.encode import wanted_texts
    from ur4rec.encode.inputs import read_inputs

    texts = wanted_texts(read_inputs(DatasetPaths(dataset, root), s.encoder))
    return list(dict.fromkeys(t for t in texts if t.strip()))


def embedding_store(dataset: str, root: Path = DATA_ROOT, generation: int = 0):
    """The vectors the encode stage wrote for `dataset` (of one generation), as the runs read them."""
    from ur4rec.encode.store import EmbeddingStore

    return EmbeddingStore(DatasetPaths(dataset, root, generation).emb)
