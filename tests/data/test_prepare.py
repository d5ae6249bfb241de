"""The prepared artifacts: contract (columns, dtypes), candidates, leakage, determinism, bad input."""

from __future__ import annotations

import json
import subprocess

import polars as pl
import pytest

from tests.conftest import REPO_ROOT
from tests.data.helpers import prepare_fixture
from tests.fixtures.raw import write_ml100k
from tests.fixtures.raw_formats import write_ml1m
from ur4rec.data.schema import CatalogueTooSmall

SPLITS = ("train", "valid", "test")
PROTOCOL = ("prepare.history_len=8", "prepare.llm_history_len=5", "prepare.eval_samples_per_user=3",
            "prepare.train_samples_per_user=4")
SAMPLE_SCHEMA = {"sample_id": pl.Int64, "user_id": pl.Int64, "target": pl.Int64, "history": pl.List(pl.Int64),
                 "candidates": pl.List(pl.Int64), "target_pos": pl.Int64}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("prep")
    raw = write_ml100k(root / "raw")
    stats = prepare_fixture(raw, root / "out", "ml-100k", *PROTOCOL)
    tables = {name: pl.read_parquet(root / "out" / f"{name}.parquet") for name in ("items", "users", "interactions", *SPLITS)}
    return root, stats, tables


def test_artifact_columns_and_dtypes(prepared):
    _, _, t = prepared
    assert dict(t["items"].schema) == {"item_id": pl.Int64, "raw_id": pl.String, "title": pl.String,
                                       "categories": pl.List(pl.String), "category_ids": pl.List(pl.Int64),
                                       "attributes": pl.String}
    assert dict(t["users"].schema) == {"user_id": pl.Int64, "raw_id": pl.String, "split": pl.String,
                                       "gender": pl.String, "age": pl.String, "occupation": pl.String,
                                       "llm_history": pl.List(pl.Int64), "llm_history_ratings": pl.List(pl.Float64)}
    assert dict(t["interactions"].schema) == {"user_id": pl.Int64, "item_id": pl.Int64, "timestamp": pl.Int64,
                                              "rating": pl.Float64}
    for split in SPLITS:
        assert dict(t[split].schema) == SAMPLE_SCHEMA


def test_dense_ids_and_sorted_interactions(prepared):
    _, stats, t = prepared
    assert t["items"]["item_id"].to_list() == list(range(1, stats["items"] + 1))
    assert t["users"]["user_id"].to_list() == list(range(1, stats["users"] + 1))
    inter = t["interactions"]
    assert inter.equals(inter.sort("user_id", "timestamp", "item_id"))
    n_cat = t["items"]["category_ids"].explode().max()
    assert sorted(t["items"]["category_ids"].explode().unique().to_list()) == list(range(1, n_cat + 1))
    assert (stats["users"], stats["items"], stats["interactions"]) == (40, 60, 1000)


def test_split_is_by_user_8_1_1_and_lists_per_user(prepared):
    _, stats, t = prepared
    assert stats["users_per_split"] == {"train": 32, "valid": 4, "test": 4}
    users = dict(t["users"].select("user_id", "split").iter_rows())
    for split in SPLITS:
        assert {users[u] for u in t[split]["user_id"]} == {split}
    for split, per_user, n_users in (("train", 4, 32), ("valid", 3, 4), ("test", 3, 4)):
        assert t[split].group_by("user_id").len()["len"].to_list() == [per_user] * n_users
    ids = pl.concat([t[s]["sample_id"] for s in SPLITS])
    assert ids.is_unique().all()


def test_samples_follow_the_chronological_sequence(prepared):
    """Targets are each user's last N interactions; a sample's history is what came right before it."""
    _, _, t = prepared
    seqs = dict(t["interactions"].group_by("user_id").agg("item_id").iter_rows())
    for split, last in (("train", 4), ("valid", 3), ("test", 3)):
        for user, target, history in t[split].select("user_id", "target", "history").iter_rows():
            seq = list(seqs[user])
            pos = seq.index(target)
            assert history == seq[max(0, pos - 8) : pos]
            assert pos >= len(seq) - last


def test_kar_protocol_shows_the_first_half_and_lists_every_later_interaction(tmp_path):
    raw = write_ml100k(tmp_path / "raw")
    prepare_fixture(raw, tmp_path / "out", "ml-100k", "prepare.protocol=kar", "prepare.kar_llm_history_max=8")
    seqs = dict(pl.read_parquet(tmp_path / "out" / "interactions.parquet").group_by("user_id").agg("item_id").iter_rows())
    llm = dict(pl.read_parquet(tmp_path / "out" / "users.parquet").select("user_id", "llm_history").iter_rows())
    for split in SPLITS:
        lists = pl.read_parquet(tmp_path / "out" / f"{split}.parquet")
        for user, targets in lists.group_by("user_id").agg("target").iter_rows():
            seq = list(seqs[user])
            shown = min(len(seq) // 2, 8)
            assert list(llm[user]) == seq[:shown]
            assert sorted(seq.index(x) for x in targets) == list(range(shown, len(seq)))


def test_leaky_cut_shows_the_llm_the_targets_and_nothing_else_changes(tmp_path, prepared):
    root, _, t = prepared
    prepare_fixture(root / "raw", tmp_path / "leaky", "ml-100k", *PROTOCOL, "prepare.llm_history_cut=none")
    stats = json.loads((tmp_path / "leaky" / "stats.json").read_text())
    assert "LEAKY" in stats
    seqs = dict(t["interactions"].group_by("user_id").agg("item_id").iter_rows())
    clean = dict(t["users"].select("user_id", "llm_history").iter_rows())
    leaky = dict(pl.read_parquet(tmp_path / "leaky" / "users.parquet").select("user_id", "llm_history").iter_rows())
    for split in SPLITS:
        assert pl.read_parquet(tmp_path / "leaky" / f"{split}.parquet").equals(t[split])
        for user, target in t[split].select("user_id", "target").iter_rows():
            assert target in leaky[user] and target not in clean[user]
    for user, window in clean.items():
        seq = list(seqs[user])
        assert list(leaky[user]) == seq[seq.index(window[0]):]


def test_test_lists_do_not_move_when_the_training_protocol_changes(tmp_path, prepared):
    root, _, t = prepared
    prepare_fixture(root / "raw", tmp_path / "more", "ml-100k", *PROTOCOL, "prepare.train_samples_per_user=all")
    more = pl.read_parquet(tmp_path / "more" / "train.parquet")
    assert more.height > t["train"].height
    for split in ("valid", "test"):
        assert pl.read_parquet(tmp_path / "more" / f"{split}.parquet").equals(t[split])


def test_candidates_are_valid(prepared):
    """n distinct items, the target at target_pos, no other item the user ever interacted with."""
    _, stats, t = prepared
    seen = {u: set(items) for u, items in t["interactions"].group_by("user_id").agg("item_id").iter_rows()}
    for split in SPLITS:
        for user, target, cands, pos in t[split].select("user_id", "target", "candidates", "target_pos").iter_rows():
            assert len(cands) == 20 == len(set(cands))
            assert cands[pos] == target
            assert all(1 <= c <= stats["items"] for c in cands)
            assert not (set(cands) - {target}) & seen[user]
    positions = pl.concat([t[s]["target_pos"] for s in SPLITS])
    assert positions.n_unique() > 5  # shuffled, not always first


def test_no_leakage_into_llm_history_or_sample_history(prepared):
    """The LLM history ends strictly before the user's earliest target in any split; a sample's history
    strictly before its target (in the chronological order)."""
    _, _, t = prepared
    seqs = dict(t["interactions"].group_by("user_id").agg("item_id").iter_rows())
    samples = pl.concat([t[s] for s in SPLITS])
    earliest = {}
    for user, target in samples.select("user_id", "target").iter_rows():
        earliest[user] = min(earliest.get(user, 10**9), list(seqs[user]).index(target))
    for user, llm in t["users"].select("user_id", "llm_history").iter_rows():
        seq = list(seqs[user])
        assert len(llm) == min(5, earliest[user])
        assert llm == seq[earliest[user] - len(llm) : earliest[user]]
    for user, target, history in samples.select("user_id", "target", "history").iter_rows():
        seq = list(seqs[user])
        assert all(seq.index(h) < seq.index(target) for h in history)


def test_same_seed_same_bytes_other_seed_other_candidates(tmp_path, prepared):
    root, _, t = prepared
    prepare_fixture(root / "raw", tmp_path / "again", "ml-100k", *PROTOCOL)
    for name in ("users", *SPLITS):
        assert pl.read_parquet(tmp_path / "again" / f"{name}.parquet").equals(t[name])
    prepare_fixture(root / "raw", tmp_path / "other", "ml-100k", *PROTOCOL, "prepare.seed=1")
    other = pl.read_parquet(tmp_path / "other" / "test.parquet")
    assert other["user_id"].to_list() != t["test"]["user_id"].to_list()


def test_stats_json_has_table1_counts(prepared):
    root, stats, _ = prepared
    on_disk = json.loads((root / "out" / "stats.json").read_text())
    assert on_disk["users"] == stats["users"] and on_disk["samples"] == {"train": 128, "valid": 12, "test": 12}
    assert on_disk["skipped_lines"] == {} and "filtering" in on_disk


def test_duplicates_keep_the_earliest_or_latest(tmp_path):
    raw = write_ml1m(tmp_path / "raw")
    first = (raw / "ratings.dat").read_text(encoding="iso-8859-1").splitlines()[0]
    user, item, _, ts = first.split("::")
    with open(raw / "ratings.dat", "a", encoding="iso-8859-1") as fh:
        fh.write(f"{user}::{item}::1::{int(ts) + 10**8}\n")
    for policy, expect in (("earliest", int(ts)), ("latest", int(ts) + 10**8)):
        stats = prepare_fixture(raw, tmp_path / policy, "ml-1m", f"prepare.duplicates={policy}")
        assert stats["filtering"]["duplicate_interactions"] == 1
        inter = pl.read_parquet(tmp_path / policy / "interactions.parquet")
        items = pl.read_parquet(tmp_path / policy / "items.parquet")
        dense = items.filter(pl.col("raw_id") == item)["item_id"].item()
        assert inter.filter((pl.col("user_id") == int(user)) & (pl.col("item_id") == dense))["timestamp"].to_list() == [expect]


def test_k_core_empties_users_and_counts_them(tmp_path):
    raw = write_ml1m(tmp_path / "raw")
    with open(raw / "ratings.dat", "a", encoding="iso-8859-1") as fh:
        fh.write("99::1::5::1300000000\n99::2::5::1300000100\n")
    stats = prepare_fixture(raw, tmp_path / "out", "ml-1m")
    assert stats["users"] == 30 and stats["filtering"]["users_removed_by_k_core"] == 1


def test_catalogue_too_small_is_a_clear_error_and_keeps_old_output(tmp_path):
    raw = write_ml1m(tmp_path / "raw")
    prepare_fixture(raw, tmp_path / "out", "ml-1m")
    before = (tmp_path / "out" / "test.parquet").read_bytes()
    with pytest.raises(CatalogueTooSmall, match=r"dataset 'fx': \d+ unseen items for 44 negatives of user \d+, but prepare.n_candidates=45 needs 44"):
        prepare_fixture(raw, tmp_path / "out", "ml-1m", "prepare.n_candidates=45", "prepare.seed=3")
    assert (tmp_path / "out" / "test.parquet").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "raw"]  # no half-written sibling left


def test_missing_raw_files_name_the_folder(tmp_path):
    (tmp_path / "raw").mkdir()
    with pytest.raises(FileNotFoundError, match=r"raw lacks ratings\.dat or ratings\.dat\.gz"):
        prepare_fixture(tmp_path / "raw", tmp_path / "out", "ml-1m")


@pytest.mark.slow
def test_cli_prepare_with_raw_dir_out_and_overrides(tmp_path):
    raw = write_ml100k(tmp_path / "raw")
    proc = subprocess.run(
        ["ur4rec", "prepare", "--dataset", "ml-100k", "--raw-dir", str(raw), "--out", str(tmp_path / "out"),
         "--params", str(REPO_ROOT / "params.yaml"), "-S", "prepare.n_candidates=20", "-S", "prepare.seed=5"],
        capture_output=True, text=True, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1])["users"] == 40
    stats = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert stats["params"]["prepare"]["seed"] == 5
    bad = subprocess.run(["ur4rec", "prepare", "--dataset", "nope", "--params", str(REPO_ROOT / "params.yaml")],
                         capture_output=True, text=True, cwd=tmp_path)
    assert bad.returncode != 0 and "unknown dataset 'nope'" in bad.stderr
