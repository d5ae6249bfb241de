"""The content-keyed encoder cache: persistence, separation by encoder, crash safety."""

from __future__ import annotations

import torch

from ur4rec.encode.cache import EmbeddingCache, text_key

DIM = 6


def vectors(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, DIM, generator=torch.Generator().manual_seed(seed))


def test_key_depends_on_encoder_and_text():
    assert text_key("fp-a", "Heat (1995)") != text_key("fp-b", "Heat (1995)")
    assert text_key("fp-a", "Heat (1995)") != text_key("fp-a", "Heat (1995) ")
    assert text_key("fp-a", "x") == text_key("fp-a", "x") and len(text_key("fp-a", "x")) == 32


def test_vectors_survive_a_new_instance(tmp_path):
    cache = EmbeddingCache(tmp_path, "fp-a", DIM)
    texts = ["Heat (1995)", "Fargo (1996)", "Amélie (2001)"]
    vecs = vectors(3)
    cache.add(cache.keys(texts), vecs)
    reopened = EmbeddingCache(tmp_path, "fp-a", DIM)
    hit, got = reopened.lookup(reopened.keys(["Fargo (1996)", "unseen", "Heat (1995)"]))
    assert hit.tolist() == [True, False, True]
    torch.testing.assert_close(got[0], vecs[1], rtol=0, atol=0)
    torch.testing.assert_close(got[2], vecs[0], rtol=0, atol=0)
    assert not got[1].any()


def test_another_encoder_sees_nothing(tmp_path):
    EmbeddingCache(tmp_path, "fp-a", DIM).add(EmbeddingCache(tmp_path, "fp-a", DIM).keys(["x"]), vectors(1))
    other = EmbeddingCache(tmp_path, "fp-b", DIM)
    assert len(other) == 0 and not other.lookup(other.keys(["x"]))[0].any()


def test_adding_known_keys_writes_nothing_new(tmp_path):
    cache = EmbeddingCache(tmp_path, "fp-a", DIM)
    cache.add(cache.keys(["a", "b"]), vectors(2))
    parts = sorted(cache.dir.iterdir())
    cache.add(cache.keys(["a", "b"]), vectors(2, seed=1))
    assert sorted(cache.dir.iterdir()) == parts
    cache.add(cache.keys(["b", "c"]), vectors(2, seed=2))
    assert len(list(cache.dir.glob("part-*.parquet"))) == 2 and len(EmbeddingCache(tmp_path, "fp-a", DIM)) == 3


def test_large_additions_are_split_into_bounded_parts(tmp_path):
    cache = EmbeddingCache(tmp_path, "fp-a", DIM, shard_mb=4 * DIM * 4 / 2**20)  # four rows per part
    texts = [f"text {i}" for i in range(10)]
    vecs = vectors(10)
    cache.add(cache.keys(texts), vecs)
    assert len(list(cache.dir.glob("part-*.safetensors"))) == 3
    hit, got = EmbeddingCache(tmp_path, "fp-a", DIM).lookup(cache.keys(texts[::-1]))
    assert hit.all()
    torch.testing.assert_close(got, vecs.flip(0), rtol=0, atol=0)


def test_a_part_cut_short_is_ignored(tmp_path):
    cache = EmbeddingCache(tmp_path, "fp-a", DIM)
    cache.add(cache.keys(["kept"]), vectors(1))
    # An interrupted run leaves vectors without keys (keys are written last): invisible, so re-encoded.
    (cache.dir / "part-interrupted.safetensors").write_bytes(b"\0" * 16)
    # Keys whose vectors were deleted by hand: ignored as well.
    (cache.dir / "part-orphan.parquet").write_bytes((next(cache.dir.glob("part-*.parquet"))).read_bytes())
    reopened = EmbeddingCache(tmp_path, "fp-a", DIM)
    assert len(reopened) == 1 and reopened.lookup(reopened.keys(["kept"]))[0].all()
