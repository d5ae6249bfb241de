"""The report: user-level statistics, Holm-adjusted marks against the control and KAR, the MDE, and plots."""

import dataclasses
import json
import zlib

import numpy as np
import polars as pl
import pytest
import torch

from ur4rec.eval.metrics import ndcg_at_k
from ur4rec.io import write_json, write_parquet
from ur4rec.paths import DatasetPaths
from ur4rec.report.build import build_report, random_expectation
from ur4rec.report.collect import collect
from ur4rec.report.paper import paper_section
from ur4rec.report.config import ReportConfig
from ur4rec.report.plan import Arm, ReportPlan
from ur4rec.retriever.variants import VariantConfig

KS = [1, 5, 10, 20]
METRICS = [f"{m}@{k}" for m in ("map", "ndcg") for k in KS]
N_USERS, LISTS = 60, 5


def write_run(root, backbone, arm, shift, seed=0, noise=0.01, dataset="toy"):
    """Per-list metrics of `arm`: a shared per-user level plus `shift` (same users and lists for every arm)."""
    rng = np.random.default_rng([seed, zlib.crc32(f"{backbone}/{arm}".encode())])
    level = np.repeat(np.random.default_rng(99).uniform(0, 0.5, N_USERS), LISTS)
    users = np.repeat(np.arange(1, N_USERS + 1), LISTS)
    values = {m: np.clip(level + shift + rng.normal(0, noise, len(users)), 0, 1) for m in METRICS}
    run = DatasetPaths(dataset, root).run(backbone, arm, seed)
    write_parquet(run.eval / "per_sample.parquet", pl.DataFrame({"sample_id": np.arange(len(users)),
                                                                 "user_id": users, **values}))
    write_json(run.eval / "metrics.json", {m: float(v.mean()) for m, v in values.items()})


def plan(seeds=(0,), sweep=False, negatives=False) -> ReportPlan:
    arms = [Arm("base", None), Arm("control", VariantConfig(kind="none")), Arm("llm", VariantConfig(kind="llm")),
            Arm("kar", VariantConfig(kind="kar")), Arm("ur4rec", VariantConfig(kind="ur4rec"), {"prm": 8, "gru4rec": 16})]
    if sweep:
        arms += [Arm(f"sweep-{k}", VariantConfig(kind="ur4rec", n_proxies=k, family="proxy_sweep"), {"prm": k, "gru4rec": k})
                 for k in (2, 8)]
    if negatives:
        arms += [Arm("llm-shuffled", VariantConfig(kind="llm", content="shuffled", family="negative_control")),
                 Arm("llm-random", VariantConfig(kind="llm", content="random", family="negative_control"))]
    return ReportPlan("toy", ["prm", "gru4rec", "sasrec"], arms, list(seeds), KS, 100, ReportConfig(bootstrap=200))


def row(md, backbone, arm):
    return next(line for line in md.splitlines() if line.startswith(f"| {backbone} | {arm} |"))


def test_marks_follow_user_level_tests_against_the_control_and_kar(tmp_path):
    for bb in ("prm", "gru4rec"):
        write_run(tmp_path, bb, "base", 0.0)
        write_run(tmp_path, bb, "control", 0.0)
        write_run(tmp_path, bb, "kar", 0.05)
        write_run(tmp_path, bb, "ur4rec", 0.2)
        write_run(tmp_path, bb, "llm", 0.0)  # the control's level: never marked
        for k, shift in ((2, 0.1), (8, 0.2)):
            write_run(tmp_path, bb, f"sweep-{k}", shift)
    summary = build_report(plan(sweep=True), root=tmp_path)
    out = tmp_path / "report" / "toy"
    md = (out / "results.md").read_text()
    assert row(md, "prm", "ur4rec").count("*†") == len(METRICS)
    assert "*" not in row(md, "prm", "llm") and "†" not in row(md, "prm", "llm")
    assert "*" in row(md, "prm", "kar") and "†" not in row(md, "prm", "kar")
    assert "sasrec/base/seed0" in summary["missing"]
    cell = summary["runs"]["prm/ur4rec"]["ndcg@10:vs_control"]
    assert cell["p_holm"] < 0.05 and cell["p_holm"] >= cell["p"] and cell["n_users"] == N_USERS
    assert cell["ci95"][0] <= cell["diff"] <= cell["ci95"][1] and cell["diff"] == pytest.approx(0.2, abs=0.01)
    assert "One seed: these tests treat each trained model as fixed" in md and "Minimum detectable" in md
    assert (out / "bars.png").stat().st_size > 1000 and (out / "proxy_sweep.png").exists()
    json.loads((out / "results.json").read_text())


def test_negative_controls_get_their_own_table_against_the_control(tmp_path):
    for arm, shift in (("base", 0.0), ("control", 0.0), ("llm", 0.0), ("kar", 0.0), ("ur4rec", 0.0),
                       ("llm-shuffled", 0.0), ("llm-random", 0.1)):
        write_run(tmp_path, "prm", arm, shift)
    runs = DatasetPaths("toy", tmp_path)  # on gru4rec the shuffled arm scores exactly as its control
    for arm, shift in (("base", 0.0), ("control", 0.0), ("llm-random", 0.1)):
        write_run(tmp_path, "gru4rec", arm, shift)
    write_run(tmp_path, "gru4rec", "llm-shuffled", 0.0)
    control = pl.read_parquet(runs.run("gru4rec", "control", 0).eval / "per_sample.parquet")
    write_parquet(runs.run("gru4rec", "llm-shuffled", 0).eval / "per_sample.parquet", control)
    build_report(plan(negatives=True), root=tmp_path)
    md = (tmp_path / "report" / "toy" / "results.md").read_text()
    section = md.split("## Negative controls", 1)[1].split("\n## ", 1)[0]
    assert "*" not in row(section, "prm", "llm-shuffled")  # at the control's level: as it should be
    assert "*" in row(section, "prm", "llm-random")  # above it: the gain would not need the user's content
    assert "llm-shuffled" not in md.split("## Negative controls", 1)[0]  # not among the main arms
    verdicts = section.split("Equivalence to the control", 1)[1]
    assert row(verdicts, "prm", "llm-random").endswith("| differs |")
    # -0.0012 [-0.0024, +0.0000]: not significant, and not inside the margin either: too little power to tell
    assert row(verdicts, "prm", "llm-shuffled").endswith("| no | 0.214 | inconclusive |")
    assert row(verdicts, "gru4rec", "llm-shuffled").endswith("| yes | 1 | equivalent |")
    # what the content adds: llm against its twins; on prm llm sits 0.1 below the random twin
    content = section.split("What the content adds", 1)[1]
    assert row(content, "prm", "llm").startswith("| prm | llm | llm-shuffled | +0.0")
    llm_vs_random = next(line for line in content.splitlines() if line.startswith("| prm | llm | llm-random |"))
    assert float(llm_vs_random.split("|")[4].split()[0]) == pytest.approx(-0.1, abs=0.01)
    assert float(llm_vs_random.split("|")[6]) < 0.05


def test_a_negative_control_finds_the_real_arm_it_stands_in_for():
    from ur4rec.report.tables import real_twin

    arms = plan(negatives=True).arms + [
        Arm("kar-random-knowledge", VariantConfig(kind="kar", item_content="random", family="negative_control")),
        Arm("ur4rec-no-llm-shuffled", VariantConfig(kind="ur4rec", z_source="bert", content="shuffled",
                                                    family="negative_control"))]
    twins = {a.name: (real_twin(a, arms) or Arm("none", None)).name for a in arms if a.family == "negative_control"}
    assert twins == {"llm-shuffled": "llm", "llm-random": "llm", "kar-random-knowledge": "kar",
                     "ur4rec-no-llm-shuffled": "none"}  # no real arm reads raw-text Z here


def test_model_selection_says_how_often_an_arm_kept_its_start(tmp_path):
    for arm in ("base", "control", "llm"):
        write_run(tmp_path, "prm", arm, 0.0)
    runs = DatasetPaths("toy", tmp_path)
    write_json(runs.run("prm", "control", 0).train / "fit.json", {"best_epoch": 1, "epochs_run": 3, "start_valid": None})
    write_json(runs.run("prm", "llm", 0).train / "fit.json", {"best_epoch": -1, "epochs_run": 2, "start_valid": 0.3})
    write_json(runs.run("prm", "control", 0).train / "config.json", {"arm": "control", "joint": {"warm_start": False}})
    write_json(runs.run("prm", "llm", 0).train / "config.json", {"arm": "llm", "joint": {"warm_start": True}})
    build_report(plan(), root=tmp_path)
    section = (tmp_path / "report" / "toy" / "results.md").read_text().split("## Model selection", 1)[1]
    assert row(section, "prm", "control") == "| prm | control | from scratch | 0/1 | 0/1 | 2/3 |"
    assert row(section, "prm", "llm") == "| prm | llm | warm start | 1/1 | 1/1 | 0/2 |"


def test_several_seeds_give_a_spread_and_pool_users_over_seeds(tmp_path):
    for seed in (0, 1, 2):
        write_run(tmp_path, "prm", "base", 0.0, seed)
        write_run(tmp_path, "prm", "control", 0.0, seed)
        write_run(tmp_path, "prm", "ur4rec", 0.01 * (seed - 1), seed, noise=0.05)  # mean zero over seeds
    summary = build_report(plan(seeds=(0, 1, 2)), root=tmp_path)
    md = (tmp_path / "report" / "toy" / "results.md").read_text()
    assert " ± " in row(md, "prm", "ur4rec") and "One seed" not in md
    cell = summary["runs"]["prm/ur4rec"]
    assert len(cell["ndcg@10:per_seed"]) == 3 and cell["ndcg@10:vs_control"]["p"] > 0.05
    assert "every seed read generation 0, so no SD or test here includes the texts' variance" in md
    build_report(dataclasses.replace(plan(seeds=(0, 1, 2)), generations=3), root=tmp_path)
    md = (tmp_path / "report" / "toy" / "results.md").read_text()
    assert "each seed read its own generation (seed 0 → 0, seed 1 → 1, seed 2 → 2)" in md


def test_holm_makes_the_marks_stricter_than_raw_p_values(tmp_path):
    """A small real effect on many comparisons: some raw p < alpha, fewer after Holm."""
    rng = np.random.default_rng(5)
    for bb in ("prm", "gru4rec", "sasrec"):
        write_run(tmp_path, bb, "base", 0.0)
        write_run(tmp_path, bb, "control", 0.0)
        for arm in ("llm", "kar", "ur4rec"):
            write_run(tmp_path, bb, arm, float(rng.uniform(0.003, 0.006)), seed=int(rng.integers(1, 99)), noise=0.02)
    summary = build_report(plan(), root=tmp_path)
    tests = [c["ndcg@10:vs_control"] for k, c in summary["runs"].items() if "ndcg@10:vs_control" in c]
    assert all(t["p_holm"] >= t["p"] for t in tests)
    assert sum(t["p"] < 0.05 for t in tests) >= sum(t["p_holm"] < 0.05 for t in tests)


def test_random_expectation_matches_known_values():
    # NDCG@10 over 100 candidates with uniform target rank: the reference value of the paper's setting.
    assert random_expectation("ndcg@10", 100) == pytest.approx(0.0454, abs=2e-4)
    assert random_expectation("map@1", 100) == pytest.approx(0.01)
    rng = np.random.default_rng(0)
    scores = rng.random((20000, 100))
    labels = np.zeros_like(scores)
    labels[:, 0] = 1
    assert ndcg_at_k(scores, labels, 10) == pytest.approx(random_expectation("ndcg@10", 100), abs=3e-3)


def test_a_leaky_report_is_marked_and_compares_gains_with_its_clean_twin(tmp_path):
    import dataclasses

    for dataset, gain in (("toy", 0.05), ("toy-LEAKY", 0.2)):
        for arm, shift in (("base", 0.0), ("control", 0.0), ("llm", gain), ("kar", 0.0), ("ur4rec", gain)):
            write_run(tmp_path, "prm", arm, shift, dataset=dataset)
    leaky = dataclasses.replace(plan(), dataset="toy-LEAKY", backbones=["prm"], leaky=True, clean_twin="toy")
    build_report(leaky, root=tmp_path)
    md = (tmp_path / "report" / "toy-LEAKY" / "results.md").read_text()
    assert md.splitlines()[2].startswith("**LEAKY**")
    line = row(md[md.index("## Leakage"):], "prm", "llm")
    assert line.rstrip(" |").endswith("+0.15") or "+0.150" in line.split("|")[-2]


def test_table5_puts_ur4rec_on_its_best_validation_backbone_against_lrurec_and_recformer(tmp_path):
    import dataclasses

    for backbone, arm, shift in (("prm", "base", 0.0), ("prm", "ur4rec", 0.1), ("sasrec", "base", 0.0),
                                 ("sasrec", "ur4rec", 0.05), ("lrurec", "base", 0.02), ("recformer", "base", 0.04)):
        write_run(tmp_path, backbone, arm, shift)
        valid = {"prm": 0.2, "sasrec": 0.3}.get(backbone, 0.1)  # validation prefers sasrec, test prefers prm
        write_json(DatasetPaths("toy", tmp_path).run(backbone, arm, 0).train / "fit.json", {"best_valid": valid})
    p = dataclasses.replace(plan(), backbones=["prm", "sasrec", "lrurec", "recformer"],
                            models={"prm": "prm", "sasrec": "sasrec", "lrurec": "lrurec", "recformer": "recformer"})
    build_report(p, root=tmp_path)
    md = (tmp_path / "report" / "toy" / "results.md").read_text()
    section = md[md.index("## Table 5"):]
    assert "UR4Rec on `sasrec` (best on validation)" in section
    assert "| lrurec (Base) |" in section and "| recformer (Base) |" in section


def test_the_llm_section_shows_the_echo_figures_the_generate_stage_writes(tmp_path):
    from ur4rec.llm.echo import echo_summary

    rows = [{"echo_share": 0.0, "titles_repeated": 0, "finish_reason": "stop"},
            {"echo_share": 0.5, "titles_repeated": 2, "finish_reason": "length"}]
    write_json(DatasetPaths("toy", tmp_path).llm / "stats.json",
               {"model": "m", "status": {"user": {"ok": 2}}, "echo": {"user": echo_summary(rows)}})
    write_run(tmp_path, "prm", "base", 0.0)
    build_report(plan(), root=tmp_path)
    md = (tmp_path / "report" / "toy" / "results.md").read_text()
    assert "| user | 0.250 | 0.250 | 50.0% | 1.00 |" in md
    assert "nan" not in md.split("## LLM outputs")[1].split("##")[0]


def test_reference_rows_close_every_table_and_each_base_is_tested_against_them(tmp_path):
    import dataclasses

    for bb in ("prm", "gru4rec"):
        for arm, shift in (("base", 0.1 if bb == "prm" else 0.0), ("control", 0.0), ("kar", 0.0), ("llm", 0.0),
                           ("ur4rec", 0.0)):
            write_run(tmp_path, bb, arm, shift)
    toppop = DatasetPaths("toy", tmp_path).run("toppop", "toppop", 0)  # written as a run, moved to its folder
    write_run(tmp_path, "toppop", "toppop", 0.0)
    ref = DatasetPaths("toy", tmp_path).reference / "toppop"
    ref.mkdir(parents=True)
    (toppop.eval / "per_sample.parquet").rename(ref / "per_sample.parquet")
    with_refs = dataclasses.replace(plan(), references=["toppop", "itemcf"])
    summary = build_report(with_refs, root=tmp_path)
    md = (tmp_path / "report" / "toy" / "results.md").read_text()
    main, tests = md.split("## NDCG@10: intervals and tests")
    assert row(main, "reference", "toppop").count("|") == len(METRICS) + 3
    assert "[" in row(tests, "reference", "toppop")  # its CI
    section = md[md.index("## Base against the reference rows"):]
    assert float(row(section, "prm", "toppop").split("|")[5].split()[0]) == pytest.approx(0.1, abs=0.01)
    assert summary["runs"]["prm/base"]["ndcg@10:vs_toppop"]["p_holm"] < 0.05
    assert summary["runs"]["gru4rec/base"]["ndcg@10:vs_toppop"]["p_holm"] > 0.05
    assert "toppop" in summary["references"] and "reference/itemcf" in md  # a missing one is listed, not dropped


def test_the_llm_section_measures_what_item_vectors_know_from_training_users_only(tmp_path):
    from ur4rec.encode.store import KindVectors, write_store
    from ur4rec.report.build import item_vector_section

    rng = np.random.default_rng(0)
    paths = DatasetPaths("toy", tmp_path)
    n_items, block = 60, lambda i: (i - 1) // 20
    users = np.repeat(np.arange(1, 201), 15)
    start = rng.integers(3, size=200)
    items = np.concatenate([1 + b * 20 + rng.integers(20, size=15) for b in start])
    items[1500:] = rng.integers(1, n_items + 1, size=1500)  # users 101-200 (not training) ignore the blocks
    write_parquet(paths.prepared / "interactions.parquet", pl.DataFrame(
        {"user_id": users, "item_id": items, "timestamp": np.tile(np.arange(15), 200), "rating": np.ones(len(users))}))
    # Valid/test users' sequences cross blocks at random: were they read, the block vectors would lose their edge.
    write_parquet(paths.prepared / "users.parquet", pl.DataFrame(
        {"user_id": np.arange(1, 201), "split": ["train"] * 100 + ["test"] * 100}))
    write_parquet(paths.prepared / "items.parquet", pl.DataFrame(
        {"item_id": np.arange(1, n_items + 1), "category_ids": [[block(i)] for i in range(1, n_items + 1)]}))
    ids = np.arange(1, n_items + 1)
    blocks = torch.nn.functional.one_hot(torch.tensor([block(i) for i in ids]), 8).float()
    write_store(paths.emb, {"item_know": KindVectors(ids, blocks), "item_text": KindVectors(ids, torch.randn(n_items, 8))},
                {"dataset": "toy"}, torch.float32, 64)
    lines = item_vector_section(paths, n_pairs=1000)
    auc = {line.split(" | ")[0].strip("| "): float(line.rsplit("|", 2)[1]) for line in lines if line.startswith("| ")
           and not line.startswith("| item representation")}
    assert auc["LLM item knowledge, as stored"] > 0.8 and auc["category labels (multi-hot)"] > 0.8
    assert abs(auc["raw text (title, categories)"] - 0.5) < 0.08
    assert "popularity of the next item" in auc and "LLM item knowledge, the model's text alone" not in auc
    # A second generation gets its own column: here its knowledge vectors are noise.
    write_store(paths.of_generation(1).emb, {"item_know": KindVectors(ids, torch.randn(n_items, 8)),
                                             "item_text": KindVectors(ids, torch.randn(n_items, 8))}, {"dataset": "toy"},
                torch.float32, 64)
    lines = item_vector_section(paths, generations=2, n_pairs=1000)
    assert "| item representation | generation 0 | generation 1 |" in lines
    cells = next(line for line in lines if line.startswith("| LLM item knowledge, as stored")).strip("|").split("|")
    assert float(cells[1]) == auc["LLM item knowledge, as stored"] and abs(float(cells[2]) - 0.5) < 0.08
    assert next(line for line in lines if line.startswith("| category labels")).endswith("|  |")  # no LLM: one value


def test_a_dataset_standing_for_ml1m_prints_the_papers_table_2_beside_its_own(tmp_path):
    for arm, shift in (("base", 0.0), ("control", 0.0), ("llm", 0.05), ("ur4rec", 0.1), ("llm-shuffled", 0.0)):
        write_run(tmp_path, "prm", arm, shift)
    p = plan(negatives=True)
    assert paper_section(p, collect(p, tmp_path)) == []  # not a paper dataset
    build_report(dataclasses.replace(p, paper_table="ml-1m", models={"prm": "prm"}), root=tmp_path)
    md = (tmp_path / "report" / "toy" / "results.md").read_text()
    section = md.split("## The paper's Table 2 (ml-1m) beside ours", 1)[1].split("\n## ", 1)[0]
    base = json.loads((DatasetPaths("toy", tmp_path).run("prm", "base", 0).eval / "metrics.json").read_text())
    cells = row(section, "prm", "Base").strip("|").split("|")
    assert float(cells[5]) == pytest.approx(base["ndcg@5"], abs=6e-4)  # ours, N@5
    assert [c.strip() for c in cells[6:10]] == ["0.156", "0.242", "0.156", "0.283"]  # the paper's PRM Base
    ur4rec = row(section, "prm", "UR4Rec").strip("|").split("|")
    assert ur4rec[-1].strip().endswith(f"/ {0.649 - 0.283:+.3f}")  # the paper's gain over its Base
    assert float(ur4rec[-1].split("/")[0]) == pytest.approx(0.1, abs=0.01)  # ours: the shift written above
    assert "control" not in section and "shuffled" not in section  # only the arms the paper has


def test_each_ablation_is_tested_against_the_full_model_it_removes_a_part_from(tmp_path):
    ablations = [Arm("ur4rec-no-llm", VariantConfig(kind="ur4rec", z_source="bert", family="ablation"), {"prm": 8}),
                 Arm("ur4rec-no-retr", VariantConfig(kind="pooled", family="ablation"))]
    the_plan = dataclasses.replace(plan(), backbones=["prm"], arms=plan().arms + ablations)
    for arm, shift in (("base", 0.0), ("control", 0.0), ("llm", 0.0), ("kar", 0.0), ("ur4rec", 0.2),
                       ("ur4rec-no-retr", 0.1)):
        write_run(tmp_path, "prm", arm, shift, noise=0.002)
    full = pl.read_parquet(DatasetPaths("toy", tmp_path).run("prm", "ur4rec", 0).eval / "per_sample.parquet")
    noisy = full.with_columns(pl.col("ndcg@10") + np.random.default_rng(3).normal(0, 0.002, full.height))
    write_parquet(DatasetPaths("toy", tmp_path).run("prm", "ur4rec-no-llm", 0).eval / "per_sample.parquet", noisy)
    build_report(the_plan, root=tmp_path)
    md = (tmp_path / "report" / "toy" / "results.md").read_text()
    section = md.split("## Ablations", 1)[1].split("\n## ", 1)[0].split("Each ablation against the full model", 1)[1]
    assert row(section, "prm", "ur4rec-no-retr").endswith("| differs |")
    assert float(row(section, "prm", "ur4rec-no-retr").split("|")[3].split()[0]) == pytest.approx(-0.1, abs=0.005)
    assert row(section, "prm", "ur4rec-no-llm").endswith("| within MDE |")  # the same scores up to noise
