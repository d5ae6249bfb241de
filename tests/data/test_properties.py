"""Property-based checks of the pure transforms: k-core, user split, negatives, samples and LLM histories."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from ur4rec.data.candidates import Seen, candidate_lists, draw_negatives
from ur4rec.data.config import PrepareConfig
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


@settings(max_examples=60, deadline=None)
@given(st.integers(20, 400), st.data())
def test_negatives_are_distinct_unseen_and_in_range(n_items, data):
    n_users = data.draw(st.integers(1, 4))
    seen = {u: np.array(sorted(data.draw(st.sets(st.integers(1, n_items), max_size=n_items - 19))), dtype=np.int64)
            for u in range(1, n_users + 1)}
    keys = np.unique(np.concatenate([u * (n_items + 1) + items for u, items in seen.items()] + [np.zeros(0, np.int64)]))
    k = data.draw(st.integers(1, min(99, min(n_items - len(v) for v in seen.values()))))
    users = np.array(data.draw(st.lists(st.integers(1, n_users), min_size=1, max_size=12)), dtype=np.int64)
    neg = draw_negatives(np.random.default_rng(data.draw(st.integers(0, 99))), users, keys, n_items, k, seen)
    assert neg.shape == (len(users), k)
    for user, row in zip(users, neg):
        assert len(set(row.tolist())) == k
        assert not set(row.tolist()) & set(seen[int(user)].tolist())
        assert row.min() >= 1 and row.max() <= n_items


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 1000), st.integers(2, 30))
def test_candidates_hold_the_target_once_at_its_position(seed, n_candidates):
    inter = pl.DataFrame({"user_id": [1 + s % 3 for s in range(21)], "item_id": [1 + s % 7 for s in range(21)]})
    samples = pl.DataFrame({"sample_id": range(1, 21), "user_id": [1 + s % 3 for s in range(20)],
                            "target": [1 + s % 7 for s in range(20)]})
    candidates, pos = candidate_lists(samples, "test", Seen(inter, 200), n_candidates, seed, "prop")
    again, _ = candidate_lists(samples, "test", Seen(inter, 200), n_candidates, seed, "prop")
    assert candidates.equals(again)  # seeded: the same lists every time
    for row, p, target in zip(candidates.to_list(), pos.to_list(), samples["target"]):
        assert len(row) == n_candidates == len(set(row)) and row[p] == target


sequences = st.lists(st.integers(1, 30), min_size=1, max_size=40, unique=True)


@settings(max_examples=100, deadline=None)
@given(st.lists(sequences, min_size=1, max_size=8), st.one_of(st.integers(1, 5), st.just("all")), st.integers(1, 4),
       st.integers(0, 10), st.integers(0, 10), st.sampled_from(["last", "kar"]),
       st.lists(st.sampled_from(["train", "valid", "test"]), min_size=8, max_size=8))
def test_histories_end_strictly_before_targets(seqs, per_train, per_eval, history_len, llm_len, protocol, splits):
    rows = [(u + 1, item, t) for u, seq in enumerate(seqs) for t, item in enumerate(seq)]
    inter = pl.DataFrame(rows, schema={"user_id": pl.Int64, "item_id": pl.Int64, "timestamp": pl.Int64}, orient="row")
    inter = inter.with_columns(pl.lit(None, pl.Float64).alias("rating"))
    split = pl.DataFrame({"user_id": range(1, len(seqs) + 1), "split": splits[: len(seqs)]})
    cfg = PrepareConfig(protocol=protocol, train_samples_per_user=per_train, eval_samples_per_user=per_eval,
                        llm_history_len=llm_len, history_len=history_len)
    users = target_positions(user_sequences(inter, split), cfg)
    samples = pl.concat([build_samples(users.filter(pl.col("split") == s), history_len) for s in ("train", "valid", "test")])
    llm = dict(llm_histories(users).select("user_id", "llm_history").iter_rows())
    earliest: dict[int, int] = {}
    for sample_id, user, target, history in samples.select("sample_id", "user_id", "target", "history").iter_rows():
        seq = seqs[user - 1]
        pos = seq.index(target)
        assert sample_id == user * 1_000_000 + pos
        assert pos >= 1 and history == seq[max(0, pos - history_len) : pos]
        earliest[user] = min(earliest.get(user, pos), pos)
    for user, seq in enumerate(seqs, start=1):
        positions = sorted(seq.index(t) for t in samples.filter(pl.col("user_id") == user)["target"])
        shown = list(llm[user])
        if protocol == "kar":
            assert shown == seq[: min(len(seq) // 2, cfg.kar_llm_history_max)]
            assert positions == list(range(max(len(shown), 1), len(seq)))
            continue
        wanted = len(seq) if per_train == "all" and splits[user - 1] == "train" else (
            per_train if splits[user - 1] == "train" else per_eval)
        assert positions == list(range(max(len(seq) - wanted, llm_len, 1), len(seq)))
        end = earliest.get(user, len(seq))
        assert shown == seq[max(0, end - llm_len) : end]  # just before the earliest target, never a target
        assert not set(shown) & {seq[p] for p in positions}
