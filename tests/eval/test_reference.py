"""The reference rows: TopPop and item-CF as pure functions, and the stage that scores the prepared lists with
training users' interactions only, in an evaluated run's format."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from tests.conftest import dataset_entry, settings
from tests.data.helpers import prepare_fixture
from tests.fixtures.raw import write_ml100k
from ur4rec.eval.metrics import metric_names, ndcg_at_k_per_sample
from ur4rec.eval.reference import item_counts, item_similarity, itemcf_scores, toppop_scores
from ur4rec.io import write_parquet
from ur4rec.paths import DatasetPaths
from ur4rec.runs.reference import score_references


def test_toppop_counts_interactions_and_unseen_items_tie_below_the_target():
    counts = item_counts(np.array([1, 1, 1, 2, 2, 3]), n_items=5)
    assert counts.tolist() == [0, 3, 2, 1, 0, 0]
    scores = toppop_scores(np.array([[2, 1, 4], [5, 4, 3]]), counts)
    assert scores.tolist() == [[2, 3, 0], [0, 0, 1]]
    # Target item 4, never seen in training, ties with item 5: ranked pessimistically below it (rank 3, not 2).
    labels = np.array([[0, 0, 1], [0, 1, 0]])
    assert ndcg_at_k_per_sample(scores, labels, 10)[1] == pytest.approx(1 / np.log2(4))
    with pytest.raises(ValueError, match=r"1\.\.5"):
        item_counts(np.array([6]), n_items=5)


def test_itemcf_sums_cosine_similarities_to_the_history_set():
    # users: 0 -> {1, 2}, 1 -> {1, 2, 3}, 2 -> {3, 4}; item 2 twice for user 0 counts once
    users, items = np.array([0, 0, 0, 1, 1, 1, 2, 2]), np.array([1, 2, 2, 1, 2, 3, 3, 4])
    sim = item_similarity(users, items, n_items=5).toarray()
    assert sim[1, 2] == pytest.approx(2 / np.sqrt(2 * 2)) and sim[2, 3] == pytest.approx(1 / np.sqrt(2 * 2))
    assert sim[3, 4] == pytest.approx(1 / np.sqrt(2)) and sim[1, 4] == 0 and np.diag(sim).sum() == 0
    assert np.allclose(sim, sim.T) and sim[5].sum() == 0  # item 5: no training user
    history = np.array([[0, 0, 1, 2, 2], [0, 0, 0, 0, 4]])  # left-padded; a repeated item counts once
    scores = itemcf_scores(history, np.array([[3, 4, 5], [3, 1, 5]]), item_similarity(users, items, 5))
    assert scores[0] == pytest.approx([sim[3, 1] + sim[3, 2], 0, 0])
    assert scores[1] == pytest.approx([sim[3, 4], 0, 0])


@pytest.fixture
def fx(tmp_path):
    raw = write_ml100k(tmp_path / "raw" / "fx", n_users=60, n_items=50, per_user=22, seed=3)
    prepare_fixture(raw, DatasetPaths("fx", tmp_path).prepared, "ml-100k")
    return tmp_path, settings(dataset_entry("fx"), "prepare.n_candidates=20")


def test_the_stage_writes_an_evaluated_runs_format_for_the_test_lists(fx):
    root, s = fx
    summary = score_references(s, "fx", root)
    paths = DatasetPaths("fx", root)
    test = pl.read_parquet(paths.prepared / "test.parquet")
    for name in ("toppop", "itemcf"):
        frame = pl.read_parquet(paths.reference / name / "per_sample.parquet")
        assert frame.columns == ["sample_id", "user_id", *metric_names(s.evaluate.ks)]
        assert frame["sample_id"].to_list() == test["sample_id"].to_list()
        means = json.loads((paths.reference / name / "metrics.json").read_text())
        assert means["n_samples"] == test.height and means["ndcg@10"] == pytest.approx(frame["ndcg@10"].mean())
        assert set(summary[name]) == {"valid", "test"}
    assert json.loads(paths.reference_metrics.read_text()) == summary
    # TopPop by hand: counts of training users' interactions, the target's pessimistic rank among candidates.
    users = pl.read_parquet(paths.prepared / "users.parquet").filter(pl.col("split") == "train")["user_id"]
    inter = pl.read_parquet(paths.prepared / "interactions.parquet")
    counts = item_counts(inter.filter(pl.col("user_id").is_in(users.implode()))["item_id"].to_numpy(), 50)
    cand = np.array(test["candidates"].to_list())
    target = counts[test["target"].to_numpy()]
    rank = (counts[cand] >= target[:, None]).sum(1)  # ties above the target
    expected = np.where(rank <= 10, 1 / np.log2(rank + 1), 0.0)
    assert pl.read_parquet(paths.reference / "toppop" / "per_sample.parquet")["ndcg@10"].to_numpy() == pytest.approx(expected)


def test_valid_and_test_users_interactions_never_reach_the_counts(fx):
    """Give every valid/test user's interactions to the first test list's target item: counted, it would become
    the most popular item and rise to the top of that list. The scores must not move."""
    root, s = fx
    paths = DatasetPaths("fx", root)
    before = score_references(s, "fx", root)
    test = pl.read_parquet(paths.prepared / "test.parquet")
    boosted = int(test["target"][0])
    split = pl.read_parquet(paths.prepared / "users.parquet").select("user_id", "split")
    inter = pl.read_parquet(paths.prepared / "interactions.parquet")
    held_out = pl.col("user_id").is_in(split.filter(pl.col("split") != "train")["user_id"].implode())
    leaked = inter.with_columns(pl.when(held_out).then(boosted).otherwise(pl.col("item_id")).alias("item_id"))
    all_counts = item_counts(leaked["item_id"].to_numpy(), 50)
    assert all_counts.argmax() == boosted  # the mutation would matter to a leaky TopPop
    write_parquet(paths.prepared / "interactions.parquet", leaked)
    assert score_references(s, "fx", root) == before
    # ...while training users' interactions do count: the check above can fail.
    train_users = split.filter(pl.col("split") == "train")["user_id"].head(30).implode()
    write_parquet(paths.prepared / "interactions.parquet",
                  inter.with_columns(pl.when(pl.col("user_id").is_in(train_users)).then(boosted)
                                     .otherwise(pl.col("item_id")).alias("item_id")))
    assert score_references(s, "fx", root) != before


def test_the_popularity_offset_counts_training_users_only(fx):
    from ur4rec.runs.model import catalog_of
    from ur4rec.runs.spec import RunSpec

    root, s = fx
    paths = DatasetPaths("fx", root)
    split = pl.read_parquet(paths.prepared / "users.parquet")
    inter = pl.read_parquet(paths.prepared / "interactions.parquet")
    train = inter.filter(pl.col("user_id").is_in(split.filter(pl.col("split") == "train")["user_id"].implode()))
    plain = settings(dataset_entry("fx"), "prepare.n_candidates=20", "backbone.prm.item_bias=none")
    assert catalog_of(plain, RunSpec("fx", "prm", None, 0), root).item_counts is None  # none reads no counts
    s = settings(dataset_entry("fx"), "prepare.n_candidates=20", "backbone.prm.item_bias=popularity")
    counts = catalog_of(s, RunSpec("fx", "prm", None, 0), root).item_counts.numpy()
    assert counts.tolist() == item_counts(train["item_id"].to_numpy(), 50).tolist()
    assert counts.sum() < inter.height  # valid and test users' interactions left out


def test_an_unprepared_dataset_is_a_one_line_error(tmp_path, capsys):
    from ur4rec.cli.boundary import boundary

    with pytest.raises(SystemExit) as exit_info:
        with boundary():
            score_references(settings(dataset_entry("fx")), "fx", tmp_path)
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 1 and err.startswith("error: ") and "run the prepare stage" in err
    assert len(err.splitlines()) == 1
