"""One stage table (`ur4rec.runs.stages`) gives both dvc.yaml's params and deps and the digest that decides
whether a variant's persisted folder is kept: the two cannot list different settings."""

from __future__ import annotations

import pytest

from tests.conftest import settings
from ur4rec.runs.spec import RunSpec
from ur4rec.runs.stages import FANOUT, STAGES, variant_reads
from ur4rec.runs.training import joint_inputs, pretrain_inputs


@pytest.mark.parametrize("stage", ["pretrain", "train_aug"])
def test_a_variant_digest_reads_what_dvc_tracks_narrowed_to_the_variant(stage, tmp_path):
    keys, files = variant_reads(stage, "ml-100k", "prm", 3, "llm", tmp_path)
    entry = STAGES[stage]
    dvc_params = [p.replace("${item.backbone}", "prm") for p in entry.dvc_params() if p != FANOUT]
    assert [k.replace("variant.llm", "variant") for k in keys] == dvc_params
    dvc_deps = [d.replace("${item.dataset}", "ml-100k").replace("${item.backbone}", "prm").replace("${item.seed}", "3")
                for d in entry.dvc_deps()]
    assert [d.removesuffix("/llm") if d.endswith("pretrain/llm") else d for d in files] == dvc_deps
    assert all(path == tmp_path / name.removeprefix("data/") for name, path in files.items())


def test_a_variant_digest_changes_with_what_its_stage_reads_and_nothing_else(tmp_path):
    spec = RunSpec("ml-100k", "prm", "llm", 0)
    before = joint_inputs(settings(), spec, tmp_path)
    assert "variant.llm" in before["settings"]["params"] and "variant" not in before["settings"]["params"]
    for unread in ("retriever.pretrain.lr=0.5", "variant.kar.kar.hidden=7", "variants=[control,llm]",
                   "train.progress=false", "backbone.sasrec.dim=8", "evaluate.batch_size=3"):
        assert joint_inputs(settings(unread), spec, tmp_path) == before, unread
    for read in ("retriever.joint.epochs=9", "variant.llm.family=ablation", "train.weight_decay=0.5",
                 "backbone.prm.dropout=0.3", "retriever.arch.dropout=0.3"):
        assert joint_inputs(settings(read), spec, tmp_path) != before, read
    assert joint_inputs(settings(), RunSpec("ml-100k", "prm", "llm", 1), tmp_path) != before
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "train_aug.json").write_text("{}")
    assert joint_inputs(settings(), spec, tmp_path) != before  # the code fingerprint is a dep


def test_a_change_to_one_backbones_retriever_entry_retrains_that_backbones_arms_alone(tmp_path):
    """DVC tracks `retriever.per_backbone` whole; a variant's digest holds only the entry its backbone reads."""
    prm, sasrec = RunSpec("ml-100k", "prm", "ur4rec", 0), RunSpec("ml-100k", "sasrec", "ur4rec", 0)
    changed = settings("retriever.per_backbone.sasrec.n_proxies=4")
    for digest in (joint_inputs, pretrain_inputs):
        assert digest(changed, prm, tmp_path) == digest(settings(), prm, tmp_path)
        assert digest(changed, sasrec, tmp_path) != digest(settings(), sasrec, tmp_path)
    assert list(joint_inputs(settings(), prm, tmp_path)["settings"]["params"]["retriever.per_backbone"]) == ["prm"]


def test_a_run_reads_its_seeds_generation_and_its_digest_names_that_store_alone(tmp_path):
    """Seed k reads generation k mod `llm.generations`; a variant's digest names its own generation's store, so
    adding generations keeps every seed whose generation is unchanged (seed 0 here) and retrains the others."""
    one, three = settings(), settings("llm.generations=3")
    for seed, generation in ((0, 0), (1, 1), (2, 2), (4, 1)):
        run = three.resolve(RunSpec("ml-100k", "prm", "llm", seed), tmp_path)
        assert run.paths.dataset.emb == (tmp_path / "ml-100k" / "emb" if generation == 0 else
                                         tmp_path / "ml-100k" / "emb_generations" / str(generation) / "emb")
        assert run.paths.train.is_relative_to(tmp_path / "ml-100k" / "runs")  # the runs stay where they were
        assert one.resolve(RunSpec("ml-100k", "prm", "llm", seed), tmp_path).paths.dataset.emb == tmp_path / "ml-100k" / "emb"
    seed0, seed1 = RunSpec("ml-100k", "prm", "llm", 0), RunSpec("ml-100k", "prm", "llm", 1)
    assert joint_inputs(three, seed0, tmp_path) == joint_inputs(one, seed0, tmp_path)
    files = joint_inputs(three, seed1, tmp_path)["files"]
    assert "data/ml-100k/emb_generations/1/emb" in files and "data/ml-100k/emb" not in files
    assert not [f for f in joint_inputs(one, seed1, tmp_path)["files"] if "emb_generations" in f]


def test_a_marker_digest_reads_only_its_variant(tmp_path):
    """A variant without pre-training writes a marker whose digest reads only its own block (and the stage's
    code), and its arm does not read the marker, so pre-training settings never retrain the control."""
    spec = RunSpec("ml-100k", "prm", "control", 0)
    before = pretrain_inputs(settings(), spec, tmp_path)
    assert pretrain_inputs(settings("retriever.pretrain.lr=0.5", "train.threads=1"), spec, tmp_path) == before
    assert pretrain_inputs(settings("variant.control.family=ablation"), spec, tmp_path) != before
    assert not [f for f in joint_inputs(settings(), spec, tmp_path)["files"] if "pretrain/" in f]
    assert [f for f in joint_inputs(settings(), RunSpec("ml-100k", "prm", "ur4rec", 0), tmp_path)["files"]
            if f.endswith("pretrain/ur4rec")]
    ur4rec = RunSpec("ml-100k", "prm", "ur4rec", 0)
    assert pretrain_inputs(settings("retriever.pretrain.lr=0.5"), ur4rec, tmp_path) != pretrain_inputs(
        settings(), ur4rec, tmp_path)


def test_resolve_looks_every_name_up_once():
    s = settings()
    run = s.resolve(RunSpec("ml-100k", "sasrec", "ur4rec", 2))
    assert run.backbone is s.backbone_spec("sasrec") and run.variant is s.variant_config("ur4rec")
    assert run.loop == s.train_config("sasrec", 2, joint=True) and run.per_backbone == s.per_backbone("sasrec")
    assert run.paths == RunSpec("ml-100k", "sasrec", "ur4rec", 2).paths()
    assert run.history_len == max(s.backbone_spec("sasrec").config.history_len, run.per_backbone.z_history)
    base = s.resolve(RunSpec("ml-100k", "prm", None, 0))
    assert base.is_base and base.loop == s.train_config("prm", 0) and base.history_len == 10
