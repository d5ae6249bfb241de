"""Property-based checks of the pure transforms: k-core, user split, negatives, samples and LLM histories."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from ur4rec.data.candidates import candidate_lists, draw_negatives
from ur4rec.data.kcore import k_core
from ur4rec.data.samples import build_samples, llm_histories, target_positions, user_sequences
from ur4rec.data.split import split_sizes, split_users

edges = st.sets(st.tuples(st.integers(1, 12), st.integers(1, 12)), max_size=80)


def peel(pairs: set[tuple[int, int]], k: int) -> set[tuple[int, int]]:
    """Reference k-core: remove one under-degree node at a time until none is left."""
    pairs = set(pairs)
    while True:
        deg_u, deg_i = defaultdict(int), defaultdict(int)
        for u, i in pairs:
            deg_u[u] += 1
            deg_i[i] += 1
        weak = next(((u, i) for u, i in pairs if deg_u[u] < k or deg_i[i] < k), None)
        if weak is None:
            return pairs
        u, i = weak
        pairs = {p for p in pairs if not (p[0] == u and deg_u[u] < k) and not (p[1] == i and deg_i[i] < k)}


@settings(max_examples=150, deadline=None)
@given(edges, st.integers(1, 5))
def test_k_core_is_a_k_core_and_the_maximal_one(pairs, k):
    frame = pl.DataFrame(sorted(pairs), schema={"user": pl.Int64, "item": pl.Int64}, orient="row")
    core = k_core(frame, k)
    kept = set(core.iter_rows())
    if kept:
        assert core.group_by("user").len()["len"].min() >= k
        assert core.group_by("item").len()["len"].min() >= k
    assert kept == peel(pairs, k)


@settings(deadline=None)  # the CPU is shared in CI: no per-example time limit
@given(st.sets(st.integers(1, 10_000), max_size=200), st.integers(0, 2**31), st.randoms(use_true_random=False))
def test_split_depends_only_on_users_and_seed(users, seed, rnd):
    ids = sorted(users)
    shuffled = ids[:]
    rnd.shuffle(shuffled)
    a = split_users(np.array(ids, dtype=np.int64), [0.8, 0.1, 0.1], seed)
    b = split_users(np.array(shuffled, dtype=np.int64), [0.8, 0.1, 0.1], seed)
    assert a.equals(b)
    assert a["user_id"].to_list() == ids
    counts = {s: n for s, n in a.group_by("split").len().iter_rows()}
    assert tuple(counts.get(s, 0) for s in ("train", "valid", "test")) == split_sizes(len(ids), [0.8, 0.1, 0.1])


@settings(deadline=None)
@given(st.integers(20, 400), st.data())
def test_negatives_are_distinct_unseen_and_in_range(n_items, data):
    seen = np.array(sorted(data.draw(st.sets(st.integers(1, n_items), max_size=n_items - 19))), dtype=np.int64)
    k = data.draw(st.integers(1, min(99, n_items - len(seen))))
    neg = draw_negatives(np.random.default_rng(data.draw(st.integers(0, 99))), n_items, seen, k)
    assert len(neg) == k == len(set(neg.tolist()))
    assert not set(neg.tolist()) & set(seen.tolist())
    assert neg.min() >= 1 and neg.max() <= n_items


@settings(max_examples=30, deadline=None)
@given(st.randoms(use_true_random=False), st.integers(0, 1000))
def test_candidates_do_not_depend_on_processing_order(rnd, seed):
    samples = pl.DataFrame({"sample_id": range(1, 21), "user_id": [1 + s % 3 for s in range(20)],
                            "target": [1 + s % 7 for s in range(20)]})
    seen = {u: np.arange(1, 8, dtype=np.int64) for u in (1, 2, 3)}
    order = list(range(20))
    rnd.shuffle(order)
    a = candidate_lists(samples, seen, 200, 10, seed, "prop")
    b = candidate_lists(samples[order], seen, 200, 10, seed, "prop").sort("sample_id")
    assert a.equals(b)


sequences = st.lists(st.integers(1, 30), min_size=1, max_size=40)


@settings(max_examples=100, deadline=None)
@given(st.lists(sequences, min_size=1, max_size=8), st.integers(0, 5), st.integers(0, 10), st.integers(0, 10),
       st.lists(st.sampled_from(["train", "valid", "test"]), min_size=8, max_size=8))
def test_histories_end_strictly_before_targets(seqs, per_user, history_len, llm_len, splits):
    rows = [(u + 1, item, t) for u, seq in enumerate(seqs) for t, item in enumerate(seq)]
    inter = pl.DataFrame(rows, schema={"user_id": pl.Int64, "item_id": pl.Int64, "timestamp": pl.Int64}, orient="row")
    inter = inter.with_columns(pl.lit(None, pl.Float64).alias("rating"))
    split = pl.DataFrame({"user_id": range(1, len(seqs) + 1), "split": splits[: len(seqs)]})
    users = target_positions(user_sequences(inter, split), per_user)
    samples = build_samples(users, history_len)
    llm = dict(llm_histories(users, llm_len).select("user_id", "llm_history").iter_rows())
    earliest: dict[int, int] = {}
    for user, pos, target, history in samples.select("user_id", "position", "target", "history").iter_rows():
        seq = seqs[user - 1]
        assert pos >= 1 and target == seq[pos] and history == seq[max(0, pos - history_len) : pos]
        earliest[user] = min(earliest.get(user, pos), pos)
    for user, seq in enumerate(seqs, start=1):
        n_samples = samples.filter(pl.col("user_id") == user).height
        expected = min(per_user if splits[user - 1] == "train" else 1, len(seq) - 1)
        assert n_samples == max(expected, 0)
        end = earliest.get(user, len(seq))
        assert llm[user] == seq[max(0, end - llm_len) : end]
