"""The encode stage: prepared tables + LLM generations -> `data/<ds>/emb/` (see docs/architecture.md).

Each distinct text is encoded once per encoder configuration, ever: identical texts within a run share a
vector, and texts seen in earlier runs come from the content-keyed cache, which is written as encoding
proceeds, so a killed run resumes where it stopped. Rows the generation stage marked
failed or empty are never encoded; the vector policy fills them and the report counts them.
"""

from __future__ import annotations

import time
from typing import Any, Sequence

import numpy as np
import torch

from ur4rec.encode.cache import EmbeddingCache
from ur4rec.encode.config import EncoderConfig
from ur4rec.encode.encoder import FrozenEncoder
from ur4rec.encode.inputs import EncodeInputs, read_inputs
from ur4rec.encode.policy import Generations, apply_policy
from ur4rec.encode.store import KindVectors, write_store
from ur4rec.io import write_json
from ur4rec.paths import DatasetPaths, cache_dir


class TextVectors:
    """Vectors of a set of distinct texts, looked up by text; the blank text maps to the zero vector."""

    def __init__(self, texts: Sequence[str], vectors: torch.Tensor):
        self._row = {t: k for k, t in enumerate(texts)}
        self._vectors = torch.cat([vectors, torch.zeros(1, vectors.shape[1])])

    def __call__(self, texts: Sequence[str]) -> torch.Tensor:
        blank = len(self._vectors) - 1
        rows = [self._row[t] if t.strip() else blank for t in texts]
        return self._vectors[torch.tensor(rows, dtype=torch.long)]


def encode_texts(
    texts: Sequence[str], encoder: FrozenEncoder, cache: EmbeddingCache | None, progress: bool = True
) -> tuple[TextVectors, dict[str, Any]]:
    """Encode each distinct non-blank text once, taking what the cache already holds."""
    unique = list(dict.fromkeys(t for t in texts if t.strip()))
    if cache is None:
        hit, vectors = np.zeros(len(unique), dtype=bool), torch.zeros(len(unique), encoder.dim)
    else:
        keys = cache.keys(unique)
        hit, vectors = cache.lookup(keys)
    miss = np.flatnonzero(~hit)
    started = time.perf_counter()
    for start, fresh in encoder.encode_windows([unique[i] for i in miss], progress=progress):
        rows = miss[start : start + len(fresh)]
        vectors[torch.from_numpy(rows)] = fresh
        if cache is not None:  # persisted window by window: a rerun after a kill resumes here
            cache.add([keys[i] for i in rows], fresh)
    seconds = time.perf_counter() - started
    stats = {
        "unique": len(unique), "cache_hits": int(hit.sum()), "encoded": len(miss), "encode_seconds": round(seconds, 3),
        "encoded_per_s": round(len(miss) / seconds, 1) if len(miss) else None,
    }
    return TextVectors(unique, vectors), stats


def wanted_texts(inputs: EncodeInputs) -> list[str]:
    """Every text the stage encodes for a dataset (repeats and blanks included), in the order it meets them."""
    return [*inputs.item_text.values(), *inputs.user_text.values(), *inputs.item_know.texts, *inputs.user_pref.texts,
            *inputs.item_answer.texts]


def encode_dataset(
    cfg: EncoderConfig, paths: DatasetPaths, progress: bool = True
) -> dict[str, Any]:
    """Run the stage for one dataset; writes `data/<ds>/emb/` atomically and returns its report.

    The report (cache hits, timings) goes beside the store, not into it: the store then holds only what the
    vectors and settings decide, so encoding the same texts again gives the same bytes and DVC reruns nothing
    downstream."""
    started = time.perf_counter()
    dataset, root = paths.name, paths.root
    inputs = read_inputs(paths, cfg)
    encoder = FrozenEncoder(cfg)
    cache = None
    if cfg.cache:
        cache = EmbeddingCache(cache_dir("emb", root), encoder.fingerprint, encoder.dim, cfg.shard_mb)
    vectors_of, text_stats = encode_texts(wanted_texts(inputs), encoder, cache, progress)

    kinds, kind_report = {}, {}
    for kind, raw in (("item_text", inputs.item_text), ("user_text", inputs.user_text)):
        kinds[kind] = KindVectors(np.fromiter(raw, np.int64, len(raw)), vectors_of(list(raw.values())))
        kind_report[kind] = {"n": len(raw), "blank": sum(not t.strip() for t in raw.values())}
    for kind, gens, raw_kind in (("item_know", inputs.item_know, "item_text"),
                                 ("user_pref", inputs.user_pref, "user_text"),
                                 ("item_answer", inputs.item_answer, "item_text")):
        kinds[kind], kind_report[kind] = _generation_vectors(gens, vectors_of, kinds[raw_kind], cfg.on_bad_generation)

    seconds = time.perf_counter() - started
    report = {
        "dataset": dataset,
        "encoder": _encoder_meta(cfg, encoder),
        "kinds": kind_report,
        "texts": text_stats,
        "seconds": round(seconds, 3),
    }
    meta = {"dataset": dataset, "encoder": _encoder_meta(cfg, encoder)}
    write_store(paths.emb, kinds, meta, cfg.storage_torch_dtype, cfg.shard_mb)
    write_json(paths.encode_report, report)
    return report


def _generation_vectors(
    gens: Generations, vectors_of: TextVectors, raw: KindVectors, policy: str
) -> tuple[KindVectors, dict[str, Any]]:
    """LLM vectors for every id, the bad rows replaced by `policy` (fallback: the raw text of the same id)."""
    assert np.array_equal(gens.ids, raw.ids), "read_inputs aligns generations and raw texts by id"
    vectors = apply_policy(vectors_of(gens.texts), gens.bad, policy, fallback=raw.vectors)
    counts = gens.counts()
    report = {"n": len(gens.ids), "replaced": counts, "replaced_total": sum(counts.values()), "policy": policy}
    return KindVectors(gens.ids, vectors), report


def _encoder_meta(cfg: EncoderConfig, encoder: FrozenEncoder) -> dict[str, Any]:
    return {
        "model": cfg.model, "fingerprint": encoder.fingerprint, "dim": encoder.dim, "pooling": cfg.pooling,
        "max_length": cfg.max_length, "dtype": cfg.resolved_dtype, "normalize": cfg.normalize,
    }

