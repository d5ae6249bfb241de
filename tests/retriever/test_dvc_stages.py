"""pretrain / train_aug / evaluate (one stage each per backbone and seed) under a real `dvc repro` in a throw-away repo, downstream of the real
prepare, encode and Base train stages (generation is committed from fixture outputs: its own tests run it)."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
import yaml

from tests.encode.helpers import write_generations
from tests.fixtures.raw import write_ml100k
from tests.report.test_html import Page, page_data
from tests.retriever.conftest import save_tiny_bert
from ur4rec.io import mark_generations
from ur4rec.paths import DatasetPaths

pytestmark = pytest.mark.slow

VARIANTS = ["control", "llm", "kar", "ur4rec"]
TINY = [
    "datasets=[ml-100k]", "backbones=[prm]", f"variants=[{','.join(VARIANTS)}]",
    "prepare.n_candidates=20", "prepare.eval_samples_per_user=2", "prepare.train_samples_per_user=3",
    "prepare.llm_history_len=5", "train.epochs=1", "train.progress=false", "train.threads=1",
    "backbone.prm.dim=16", "backbone.prm.max_candidates=20",
    "retriever.arch.init_checkpoint=tiny-bert", "retriever.arch.n_layers=1",
    "retriever.per_backbone.prm.n_proxies=2", "retriever.pretrain.epochs=1", "retriever.joint.epochs=1",
]


def write_llm_outputs(root, dataset: str) -> None:
    """What the generation stage writes, for every prepared user and item (one of each failed)."""
    paths = DatasetPaths(dataset, root / "data")
    users = pq.read_table(paths.prepared / "users.parquet", columns=["user_id"]).column("user_id").to_pylist()
    items = pq.read_table(paths.prepared / "items.parquet", columns=["item_id"]).column("item_id").to_pylist()
    for path, column, ids, text in ((paths.llm / "user_preferences.parquet", "user_id", users, "User {} likes crime dramas."),
                                    (paths.llm / "item_knowledge.parquet", "item_id", items, "Item {} is a thriller.")):
        statuses = ["failed"] + ["ok"] * (len(ids) - 1)
        write_generations(path, column, ids, [text.format(i) for i in ids], statuses)
    mark_generations(paths.llm_generations, 1, {"sampling_seeds": [0]})  # one generation: no other


def _require_upstream(project) -> None:
    stages = yaml.safe_load((project.root / "dvc.yaml").read_text())["stages"]
    missing = [s for s in ("prepare", "encode", "train", "evaluate") if s not in stages]
    assert not missing, f"upstream DVC stage(s) {missing} missing from dvc.yaml"


def _commit_generation(project) -> None:
    """Write the generation stage's outputs as it would and record them, so repro treats it as done."""
    project.repro("prepare@ml-100k")
    write_llm_outputs(project.root, "ml-100k")
    stages = yaml.safe_load((project.root / "dvc.yaml").read_text())["stages"]
    if "generate" in stages:
        project.run("dvc", "commit", "-f", "generate@ml-100k")


def test_all_variants_repro_then_no_op_then_only_the_changed_variant(dvc_project):
    project = dvc_project(*TINY)
    _require_upstream(project)
    save_tiny_bert(project.root / "tiny-bert")
    write_ml100k(project.root / "mirror" / "ml-100k")
    _commit_generation(project)

    ran = project.ran_stages(project.repro())
    for stage in ("pretrain@ml-100k-prm-0", "train_aug@ml-100k-prm-0", "evaluate@ml-100k-prm-0", "report@ml-100k"):
        assert stage in ran, (stage, ran)
    runs = project.root / "data" / "ml-100k" / "runs" / "prm" / "seed0"
    assert set(json.loads((runs / "metrics.json").read_text())) == {"base", *VARIANTS}
    for variant in VARIANTS:
        metrics = json.loads((runs / "eval" / variant / "metrics.json").read_text())
        assert 0.0 <= metrics["ndcg@10"] <= 1.0
        assert (runs / "arms" / variant / "train" / "model.safetensors").exists()
    assert (runs / "base" / "train" / "model.safetensors").exists()
    assert (runs / "pretrain" / "ur4rec" / "model.safetensors").exists()
    assert not (runs / "pretrain" / "kar" / "model.safetensors").exists()  # marker only
    report = (project.root / "data" / "report" / "ml-100k" / "results.md").read_text()
    assert "| prm | control |" in report and "Minimum detectable" in report
    # the page, its drill-down from what the evaluation saved: ranks for every arm, attention for UR4Rec's
    for arm in ("base", *VARIANTS):
        assert (runs / "eval" / arm / "ranks.parquet").exists()
        assert (runs / "eval" / arm / "attention.parquet").exists() == (arm == "ur4rec")
    drill = page_data(Page((project.root / "data" / "report" / "ml-100k" / "index.html").read_text()))["drill"]
    arms = [r["arm"] for r in drill["runs"]]
    assert arms == ["base", *VARIANTS] and drill["users"]
    for user in drill["users"]:
        for lst in user["lists"]:
            assert all(1 <= r <= 20 for r in lst["rank"]) and set(lst["att"]) == {str(arms.index("ur4rec"))}

    second = project.repro()
    assert project.ran_stages(second) == [], second.stdout

    # A variant's block: the pretrain and train_aug stages rerun but keep every other variant's folder, so only
    # that variant pre-trains and trains again (then the evaluation of the backbone and seed).
    weights = {v: (runs / "arms" / v / "train" / "model.safetensors").read_bytes() for v in VARIANTS}
    project.set_params("variant.ur4rec.n_proxies=3")
    changed = project.repro()
    assert _upstream_of_report(project.ran_stages(changed)) == [
        "evaluate@ml-100k-prm-0", "pretrain@ml-100k-prm-0", "train_aug@ml-100k-prm-0"]
    assert _kept(changed.stdout) == {"control": 2, "llm": 2, "kar": 2}, changed.stdout  # pretrain and train_aug
    for variant in VARIANTS:
        same = (runs / "arms" / variant / "train" / "model.safetensors").read_bytes() == weights[variant]
        assert same == (variant != "ur4rec"), variant
    project.set_params("variant.kar.kar.out_dim=4")
    changed = project.repro()
    assert _upstream_of_report(project.ran_stages(changed)) == [
        "evaluate@ml-100k-prm-0", "pretrain@ml-100k-prm-0", "train_aug@ml-100k-prm-0"]
    assert _kept(changed.stdout) == {"control": 2, "llm": 2, "ur4rec": 2}, changed.stdout

    # A variant dropped from `variants`: its folders go, the others are kept, nothing trains.
    project.set_params("variants=[control,ur4rec]")
    changed = project.repro()
    assert _kept(changed.stdout) == {"control": 2, "ur4rec": 2}, changed.stdout
    assert sorted(p.name for p in (runs / "arms").iterdir() if p.is_dir()) == ["control", "ur4rec"]
    assert set(json.loads((runs / "metrics.json").read_text())) == {"base", "control", "ur4rec"}


def _kept(stdout: str) -> dict[str, int]:
    """How often each variant's folder was kept (once per pretrain or train_aug stage that kept it)."""
    return {v: n for v in VARIANTS if (n := stdout.count(f"ml-100k/prm/{v}/seed0: inputs unchanged, kept"))}


def _upstream_of_report(stages: list[str]) -> list[str]:
    """The report reads every run, so it reruns after any of them; the rest must be exactly the variant's."""
    return [s for s in stages if not s.startswith("report@")]
