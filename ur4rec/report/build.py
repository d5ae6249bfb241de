"""The report stage: tables, statistics and plots for one dataset, into `data/report/<ds>/`.

results.md (read it first), results.json (DVC metrics: every cell with its seeds' values, CI and tests),
bars.png, pretrain.png, proxy_sweep.png when the sweep ran, and index.html: all of it on one self-contained page
with interactive plots and a per-user drill-down (`ur4rec.report.html`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from ur4rec.encode.store import EmbeddingStore, StoreError
from ur4rec.eval.item_vectors import consecutive_pairs, one_hot, popularity_auc, vector_auc
from ur4rec.eval.metrics import parse_metric
from ur4rec.eval.reference import item_counts
from ur4rec.eval.stats import PairedTest, bootstrap_ci, holm, paired_test
from ur4rec.io import write_json, write_text
from ur4rec.paths import BASE_ARM as BASE
from ur4rec.paths import DATA_ROOT, DatasetPaths, report_dir
from ur4rec.report.collect import Results, collect, read_json
from ur4rec.report.html import write_html
from ur4rec.report.plan import Arm, ReportPlan
from ur4rec.report.paper import paper_section
from ur4rec.report.plots import arm_bars, pretrain_curves, proxy_sweep
from ur4rec.report.tables import (
    ablation_table,
    compare,
    comparison_table,
    content_table,
    equivalence_table,
    mde_note,
    reference_arms,
    results_table,
    table_comparisons,
)

LEAKY_BANNER = ("**LEAKY**: built with `llm_history_cut: none`, so the LLM saw every target. These numbers measure "
                "leakage; they are not results.")


def random_expectation(metric: str, n_candidates: int) -> float:
    """Expected value of `metric` when the target's rank is uniform over the candidates (one relevant item)."""
    name, k = parse_metric(metric)
    ranks = range(1, min(k, n_candidates) + 1)
    gain = (lambda r: 1 / math.log2(r + 1)) if name == "ndcg" else (lambda r: 1 / r)
    return sum(gain(r) for r in ranks) / n_candidates


def build_report(plan: ReportPlan, root: Path = DATA_ROOT) -> dict[str, Any]:
    """Write results.md, results.json and the plots for every run the plan names."""
    results = collect(plan, root)
    out = report_dir(root) / plan.dataset
    focus = plan.cfg.focus_metric
    random_focus = random_expectation(focus, plan.n_candidates)
    main = [a for a in plan.arms if a.family == "main"]
    control, _ = reference_arms(plan)
    ablations = [a for a in plan.arms if a.family == "ablation"]
    parts = [f"# {plan.dataset}: test results\n"]
    if plan.leaky:
        parts.append(LEAKY_BANNER + "\n")
    parts.append(header(plan, results, random_focus))
    parts += ["## Main results\n", results_table(plan, results, main, plan.metrics), ""]
    table, comparisons = comparison_table(plan, results, main, focus)
    parts += [f"## {focus.upper()}: intervals and tests\n", table, "", mde_note(plan, comparisons, focus), ""]
    parts += reference_section(plan, results)
    parts += paper_section(plan, results)
    if ablations:
        anchor = [a for a in main if a.is_control or (a.variant is not None and a.variant.uses_retriever)]
        ab_arms = anchor + ablations
        ab_metrics = list(dict.fromkeys([f"map@{parse_metric(focus)[1]}", focus]))
        ab_table, ab_comparisons = comparison_table(plan, results, ab_arms, focus)
        parts += ["## Ablations\n", results_table(plan, results, ab_arms, ab_metrics), "", ab_table, "",
                  mde_note(plan, ab_comparisons, focus), ""]
        full = next((a for a in main if a.variant is not None and a.variant.uses_retriever), None)
        against_full = ablation_table(plan, results, full, ablations, focus) if full is not None else ""
        if against_full:
            parts += [f"Each ablation against the full model ({full.name}; Holm over this table):\n", against_full, ""]
    negatives = [a for a in plan.arms if a.family == "negative_control"]
    if negatives:  # shuffled or random vectors: each should score as the control, within its CI
        nc_arms = [a for a in main if a.is_control] + negatives
        nc_table, nc_comparisons = comparison_table(plan, results, nc_arms, focus)
        parts += ["## Negative controls\n", results_table(plan, results, nc_arms, [focus]), "", nc_table, "",
                  mde_note(plan, nc_comparisons, focus), "", "Equivalence to the control (the target: every negative "
                  "control's 95% CI inside ± the table's median MDE):\n", equivalence_table(plan, nc_comparisons, focus), ""]
        content = content_table(plan, results, negatives, focus)
        if content:
            parts += ["What the content adds: each real arm against its content-free twin (same variant, fusion and "
                      "training; Holm over this table):\n", content, ""]
    arm_bars(plan, results, main, focus, random_focus, out / "bars.png")
    parts.append("![bars](bars.png)\n")
    if proxy_sweep(plan, results, focus, out / "proxy_sweep.png"):
        parts.append("![proxy sweep](proxy_sweep.png)\n")
    if plan.clean_twin:
        parts += leakage_section(plan, results, root)
    parts += table5_section(plan, results)
    parts += pretraining_section(plan, root, out)
    parts += llm_section(plan, root)
    parts += selection_section(plan, results)
    parts += cost_section(plan, results)
    if results.missing or results.missing_references:
        parts += ["## Not evaluated\n", ", ".join([f"{b}/{a}/seed{s}" for b, a, s in results.missing]
                                                  + [f"reference/{name}" for name in results.missing_references]), ""]
    markdown = "\n".join(parts) + "\n"
    write_text(out / "results.md", markdown)
    summary = summarise(plan, results, control, random_focus)
    write_json(out / "results.json", summary)
    write_html(plan, results, summary, markdown, root, out)
    return summary


def header(plan: ReportPlan, results: Results, random_focus: float) -> str:
    some = next(iter(results.runs.values()), None)
    lists = some.frame.height if some else 0
    users = some.frame["user_id"].n_unique() if some else 0
    seeds = len(plan.seeds)
    text = (f"{len(results.runs)} evaluated runs; {lists} test lists of {users} test users; seeds {plan.seeds}. "
            f"Cells: mean over seeds{' ± SD over seeds' if seeds > 1 else ''}. `*` better than the control, `†` better "
            f"than KAR: two-sided paired t-test on per-user values (a user's lists, then seeds, averaged), "
            f"Holm-adjusted over the table's comparisons on that metric, α = {plan.cfg.alpha}. Random ranking of "
            f"{plan.n_candidates} candidates: {plan.cfg.focus_metric.upper()} ≈ {random_focus:.4f}.\n")
    if seeds == 1:
        text += ("\nOne seed: these tests treat each trained model as fixed, so they ignore training variance; "
                 "run several seeds (`dvc exp run -S 'seeds=[0,1,2]'`) before reading a difference as an effect.\n")
    text += "\n" + texts_variance(plan.seeds, plan.generations) + "\n"
    return text


def texts_variance(seeds: list[int], generations: int) -> str:
    """Which LLM texts the seeds read, so a reader knows whether the texts' variance is in the numbers."""
    read = sorted({seed % generations for seed in seeds})
    if len(read) == len(seeds) > 1:
        return (f"LLM texts: each seed read its own generation ({', '.join(f'seed {s} → {s % generations}' for s in seeds)}), "
                "so the SD over seeds and the per-user values averaged over seeds include the texts' variance.")
    if len(read) == 1:
        return (f"LLM texts: every seed read generation {read[0]}, so no SD or test here includes the texts' "
                "variance (another generation is another draw: `llm.generations`, docs/generation.md).")
    return (f"LLM texts: {len(seeds)} seeds read {len(read)} generations (`llm.generations` {generations}), so the "
            "texts' variance is in the SD over seeds only in part.")


def base_against_references(plan: ReportPlan, results: Results) -> list[tuple[str, str, PairedTest, float]]:
    """(backbone, reference, Base − reference on per-user values, Holm-adjusted p) over every pair."""
    focus = plan.cfg.focus_metric
    found = []
    for backbone in plan.backbones:
        seeds = results.seeds(backbone, BASE)
        if not seeds:
            continue
        users, base = results.user_matrix(backbone, BASE, focus, seeds)
        for name, ref in results.references.items():
            ref_users, values = ref.per_user(focus)
            if not np.array_equal(ref_users, users):
                raise ValueError(f"{plan.dataset}: reference {name} and {backbone}/base were scored on different test users")
            found.append((backbone, name, paired_test(values, base, n_resamples=plan.cfg.bootstrap)))
    adjusted = holm([t.pvalue for *_, t in found])
    return [(b, name, t, float(p)) for (b, name, t), p in zip(found, adjusted)]


def reference_section(plan: ReportPlan, results: Results) -> list[str]:
    """Each Base against each reference row: what training a backbone adds over a count."""
    found = base_against_references(plan, results)
    if not found:
        return []
    focus = plan.cfg.focus_metric
    rows = [f"| {b} | {name} | {t.mean_b:.4f} | {t.mean_a:.4f} | {t.diff:+.4f} [{t.ci_low:+.4f}, {t.ci_high:+.4f}] | "
            f"{t.pvalue:.3g} | {p:.3g} |" for b, name, t, p in found]
    return [f"## Base against the reference rows ({focus.upper()})\n",
            "Reference scorers count training users' interactions only (`ur4rec/eval/reference.py`). Δ = Base − "
            "reference on per-user values, paired t-test, Holm over this table.\n",
            "| Backbone | Reference | Base | reference | Δ [95% CI] | p | p Holm |", "|---|---|---:|---:|---:|---:|---:|",
            *rows, ""]


TABLE5_MODELS = ("lrurec", "recformer")


def best_on_validation(plan: ReportPlan, results: Results, arm: str, backbones: list[str]) -> str | None:
    """The backbone whose `arm` run has the best mean validation selection metric (never the test split)."""
    scores = {}
    for backbone in backbones:
        fits = [read_json(results.runs[(backbone, arm, s)].paths.train / "fit.json") for s in results.seeds(backbone, arm)]
        values = [f["best_valid"] for f in fits if f]
        if values:
            scores[backbone] = float(np.mean(values))
    return max(scores, key=scores.get) if scores else None


def table5_section(plan: ReportPlan, results: Results) -> list[str]:
    """Table 5: UR4Rec on the backbone that is best on validation against LRURec and Recformer (Base), on the
    same test lists and users, with the user-level tests of the main tables."""
    baselines = [b for b in plan.backbones if plan.models.get(b) in TABLE5_MODELS and results.has(b, BASE)]
    ours = next((a for a in plan.arms if a.variant is not None and a.variant.uses_retriever and a.family == "main"), None)
    if not baselines or ours is None:
        return []
    candidates = [b for b in plan.backbones if plan.models.get(b) not in TABLE5_MODELS or b in baselines]
    best = best_on_validation(plan, results, ours.name, candidates)
    if best is None:
        return []
    focus = plan.cfg.focus_metric
    rows, found = [], []
    for baseline in baselines:
        seeds = sorted(set(results.seeds(best, ours.name)) & set(results.seeds(baseline, BASE)))
        _, a = results.user_matrix(baseline, BASE, focus, seeds)
        _, b = results.user_matrix(best, ours.name, focus, seeds)
        found.append((baseline, paired_test(a, b, n_resamples=plan.cfg.bootstrap)))
    adjusted = holm([t.pvalue for _, t in found])
    for (baseline, t), p in zip(found, adjusted):
        rows.append(f"| {plan.models[baseline]} (Base) | {t.mean_a:.4f} | {t.mean_b:.4f} | {t.diff:+.4f} "
                    f"[{t.ci_low:+.4f}, {t.ci_high:+.4f}] | {t.pvalue:.3g} | {p:.3g} |")
    return [f"## Table 5: UR4Rec on `{best}` (best on validation) against LRURec and Recformer\n",
            f"Per-user mean {focus.upper()} on the same test lists; Δ = UR4Rec − baseline, Holm over this table.\n",
            f"| Baseline | baseline | UR4Rec ({best}) | Δ [95% CI] | p | p Holm |", "|---|---:|---:|---:|---:|---:|",
            *rows, ""]


def leakage_section(plan: ReportPlan, leaky: Results, root: Path) -> list[str]:
    """Each arm's gain over the control with the targets shown to the LLM, against the same on the clean twin."""
    import dataclasses

    control, _ = reference_arms(plan)
    if control is None:
        return []
    clean = collect(dataclasses.replace(plan, dataset=plan.clean_twin, leaky=False), root)
    focus = plan.cfg.focus_metric
    rows = []
    for backbone in plan.backbones:
        for arm in plan.arms:
            if arm.is_base or arm.is_control:
                continue
            gains = []
            for results in (clean, leaky):
                test = compare(results, backbone, arm.name, control.name, focus, plan.cfg.bootstrap)
                gains.append(test)
            if None in gains:
                continue
            c, k = gains
            rows.append(f"| {backbone} | {arm.name} | {c.diff:+.4f} [{c.ci_low:+.4f}, {c.ci_high:+.4f}] | "
                        f"{k.diff:+.4f} [{k.ci_low:+.4f}, {k.ci_high:+.4f}] | {k.diff - c.diff:+.4f} |")
    if not rows:
        return ["## Leakage\n", f"No clean run of `{plan.clean_twin}` to compare with yet.\n"]
    return [f"## Leakage: gain over the control, clean `{plan.clean_twin}` against LEAKY\n",
            f"Δ {focus.upper()} against the control (95% user-bootstrap CI). The last column is the part of the "
            "LEAKY gain that seeing the targets created.\n",
            "| Backbone | Arm | clean Δ | LEAKY Δ | created by leakage |", "|---|---|---:|---:|---:|", *rows, ""]


def pretraining_section(plan: ReportPlan, root: Path, out: Path) -> list[str]:
    """Per pre-trained retriever: the best epoch's validation numbers against chance, and the curves."""
    paths = DatasetPaths(plan.dataset, root)
    chance_cl, chance_hit = math.log(plan.n_negatives + 1), 1 / (plan.n_negatives + 1)
    rows, curves = [], {}
    for backbone in plan.backbones:
        for arm in plan.arms:
            if arm.variant is None or not arm.variant.needs_pretraining:
                continue
            for seed in plan.seeds:
                fit = read_json(paths.run(backbone, arm.name, seed).pretrain / "fit.json")
                if not fit or fit["best_epoch"] < 0:
                    continue
                best = fit["history"][fit["best_epoch"]]
                curves[f"{backbone}/{arm.name}/s{seed}"] = fit["history"]
                rows.append(f"| {backbone} | {arm.name} | {seed} | {fit['best_epoch'] + 1}/{fit['epochs_run']} | "
                            + " | ".join(f"{best[k]:.3f}" if k in best else "" for k in
                                         ("train_cl", "valid_cl", "valid_hit@1", "valid_pim", "valid_pim_acc")) + " |")
    if not rows:
        return []
    parts = ["## Retriever pre-training (validation users)\n",
             f"Chance: InfoNCE ln(M+1) = {chance_cl:.3f}, hit@1 = {chance_hit:.3f} (M = {plan.n_negatives}); targets: "
             f"valid InfoNCE ≤ {0.85 * chance_cl:.3f} (0.85 × chance) and PIM accuracy ≥ 0.65.\n",
             "| Backbone | Arm | Seed | best epoch | train CL | valid CL | valid hit@1 | valid PIM | valid PIM acc |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|", *rows, ""]
    if pretrain_curves(curves, chance_cl, out / "pretrain.png"):
        parts.append("![pre-training curves](pretrain.png)\n")
    return parts


def llm_section(plan: ReportPlan, root: Path) -> list[str]:
    """What the LLM wrote: statuses, how much of its output copies its prompt (echo), per kind, and what its
    item vectors know."""
    stats = read_json(DatasetPaths(plan.dataset, root).llm / "stats.json")
    if not stats:
        return []
    lines = ["## LLM outputs\n", f"Model `{stats.get('model', '?')}`; statuses: "
             + "; ".join(f"{kind}: {counts}" for kind, counts in (stats.get("status") or {}).items()) + "."]
    echo = stats.get("echo")
    nan = float("nan")
    if echo:
        lines += ["", "| kind | median echo share | mean echo share | truncated | titles repeated (mean) |",
                  "|---|---:|---:|---:|---:|"]
        for kind, e in echo.items():
            # Keys of `ur4rec.llm.echo.echo_summary`, the function that writes them.
            lines.append(f"| {kind} | {e.get('echo_share_median', nan):.3f} | {e.get('echo_share_mean', nan):.3f} | "
                         f"{e.get('share_truncated', nan):.1%} | {e.get('titles_repeated_mean', nan):.2f} |")
    for g in range(1, plan.generations):
        other = read_json(DatasetPaths(plan.dataset, root, g).llm / "stats.json") or {}
        lines.append(f"\nGeneration {g} (its own sampling seeds): statuses: "
                     + "; ".join(f"{kind}: {counts}" for kind, counts in (other.get("status") or {}).items()) + ".")
    lines.append("")
    return [*lines, *item_vector_section(DatasetPaths(plan.dataset, root), plan.generations)]


def item_vector_section(paths: DatasetPaths, generations: int = 1, n_pairs: int = 20_000) -> list[str]:
    """Co-consumption AUC of each item representation (`ur4rec.eval.item_vectors`): the LLM knowledge as
    stored and as the model wrote it (one column per LLM generation), the raw text, genre labels, and
    popularity as the level to clear."""
    try:
        stores = [EmbeddingStore(paths.of_generation(g).emb) for g in range(generations)]
        store = stores[0]
        inter = pl.read_parquet(paths.prepared / "interactions.parquet")
        users = pl.read_parquet(paths.prepared / "users.parquet", columns=["user_id", "split"])
        items = pl.read_parquet(paths.prepared / "items.parquet", columns=["item_id", "category_ids"]).sort("item_id")
    except (OSError, ValueError, StoreError):
        return []
    train = inter.join(users.filter(pl.col("split") == "train").select("user_id"), on="user_id")
    n_items = int(items["item_id"].max())
    first, second, other = consecutive_pairs(train["user_id"].to_numpy(), train["item_id"].to_numpy(),
                                             train["timestamp"].to_numpy(), n_pairs, n_items)
    categories: list[list[int] | None] = [None] * n_items
    for item, cats in items.iter_rows():
        categories[item - 1] = cats

    def auc(table: np.ndarray) -> str:
        return f"{vector_auc(table, first, second, other):.3f}"

    rows = [(label, [auc(st.table(kind, n_items + 1).numpy()) for st in stores])
            for kind, label in (("item_know", "LLM item knowledge, as stored"),
                                ("item_answer", "LLM item knowledge, the model's text alone")) if kind in store.kinds]
    same = [""] * (generations - 1)  # no LLM in these: one value for every generation
    if "item_text" in store.kinds:
        rows.append(("raw text (title, categories)", [auc(store.table("item_text", n_items + 1).numpy()), *same]))
    rows.append(("category labels (multi-hot)", [auc(one_hot(categories, n_items)), *same]))
    counts = item_counts(train["item_id"].to_numpy(), n_items)
    rows.append(("popularity of the next item", [f"{popularity_auc(counts, second, other):.3f}", *same]))
    header = "| item representation | " + " | ".join(
        "AUC" if generations == 1 else f"generation {g}" for g in range(generations)) + " |"
    return ["### Item vectors: do they tell co-consumed items apart?\n",
            f"AUC of {len(first):,} consecutive pairs in training users' sequences against the same first item with "
            "a uniformly drawn one, scored by the centred cosine of their vectors (0.5: nothing). Replaced "
            "generations (the encoder's policy) count as they are stored"
            + ("; one column per LLM generation" if generations > 1 else "") + ".\n",
            header, "|---|" + "---:|" * generations, *[f"| {label} | {' | '.join(v)} |" for label, v in rows], ""]


def selection_section(plan: ReportPlan, results: Results) -> list[str]:
    """Which epoch each trained arm kept: how often its starting weights won (possible only with
    `validate_start`: for a warm-started arm they are Base's) and the kept epochs, so a tie with the control
    can be told from an arm that never moved."""
    rows = []
    for backbone in plan.backbones:
        for arm in plan.arms:
            fits = [read_json(results.runs[(backbone, arm.name, s)].paths.train / "fit.json")
                    for s in results.seeds(backbone, arm.name)]
            fits = [f for f in fits if f and "best_epoch" in f]
            if not fits:
                continue
            kept_start = sum(f["best_epoch"] < 0 for f in fits)
            scored_start = sum(f.get("start_valid") is not None for f in fits)
            epochs = ", ".join(f"{f['best_epoch'] + 1}/{f['epochs_run']}" for f in fits)
            regime = run_regime(read_json(results.runs[(backbone, arm.name, results.seeds(backbone, arm.name)[0])]
                                          .paths.train / "config.json") or {})
            rows.append(f"| {backbone} | {arm.name} | {regime} | {kept_start}/{len(fits)} | {scored_start}/{len(fits)} "
                        f"| {epochs} |")
    if not rows:
        return []
    return ["## Model selection\n", "Kept epoch of each run on validation (0 = the starting weights, which compete only "
            "where they were scored: `retriever.joint.validate_start`). Regime: Base trains from scratch; an arm "
            "either fine-tunes its Base (warm start) or trains from scratch on Base's schedule "
            "(`retriever.per_backbone.<name>.joint`), as every arm of its backbone does.\n",
            "| Backbone | Arm | regime | kept start | start scored | kept epoch / epochs run, by seed |",
            "|---|---|---|---:|---:|---|", *rows, ""]


def run_regime(config: dict) -> str:
    """How a run started, from its recorded config: Base, or an arm's `retriever.joint.warm_start`."""
    joint = config.get("joint")
    if not joint:
        return "from scratch" if config else "?"
    return "warm start" if joint.get("warm_start", True) else "from scratch"


def cost_section(plan: ReportPlan, results: Results) -> list[str]:
    """Training cost per arm: epochs run and wall seconds, summed over backbones, averaged over seeds."""
    rows = []
    for arm in plan.arms:
        epochs, seconds = [], []
        for (backbone, name, seed), run in results.runs.items():
            if name != arm.name:
                continue
            fit = read_json(run.paths.train / "fit.json")
            if fit and "history" in fit:
                epochs.append(fit["epochs_run"])
                seconds.append(sum(h["seconds"] + h.get("validation_seconds", 0.0) for h in fit["history"]))
        if seconds:
            rows.append(f"| {arm.name} | {np.mean(epochs):.1f} | {np.mean(seconds):.1f} | {np.sum(seconds) / max(len(plan.seeds), 1):.0f} |")
    if not rows:
        return []
    return ["## Training cost\n", "| Arm | epochs (mean) | seconds per run (mean) | seconds per seed (all backbones) |",
            "|---|---:|---:|---:|", *rows, ""]


def summarise(plan: ReportPlan, results: Results, control: Arm | None, random_focus: float) -> dict[str, Any]:
    focus = plan.cfg.focus_metric
    tests = {(c.backbone, c.arm, c.reference): c for c in table_comparisons(plan, results, plan.arms, focus)}
    cells: dict[str, Any] = {}
    for backbone in plan.backbones:
        for arm in plan.arms:
            seeds = results.seeds(backbone, arm.name)
            if not seeds:
                continue
            _, per_user = results.user_matrix(backbone, arm.name, focus, seeds)
            cell: dict[str, Any] = {m: float(np.mean(results.values(backbone, arm.name, m))) for m in plan.metrics}
            cell["seeds"] = seeds
            cell[f"{focus}:per_seed"] = results.values(backbone, arm.name, focus)
            cell[f"{focus}:ci95"] = list(bootstrap_ci(per_user, n_resamples=plan.cfg.bootstrap))
            for (b, a, ref), c in tests.items():
                if (b, a) == (backbone, arm.name):
                    cell[f"{focus}:vs_{ref}"] = {"diff": c.test.diff, "p": c.test.pvalue, "p_holm": c.p_holm,
                                                 "ci95": [c.test.ci_low, c.test.ci_high], "n_users": c.test.n_users}
            cells[f"{backbone}/{arm.name}"] = cell
    references = {name: {**{m: ref.mean(m) for m in plan.metrics},
                         f"{focus}:ci95": list(bootstrap_ci(ref.per_user(focus)[1], n_resamples=plan.cfg.bootstrap))}
                  for name, ref in results.references.items()}
    for backbone, name, t, p in base_against_references(plan, results):
        cells[f"{backbone}/{BASE}"][f"{focus}:vs_{name}"] = {"diff": t.diff, "p": t.pvalue, "p_holm": p,
                                                              "ci95": [t.ci_low, t.ci_high], "n_users": t.n_users}
    return {"dataset": plan.dataset, "leaky": plan.leaky, "random": {focus: random_focus},
            "control": control.name if control else None, "runs": cells, "references": references,
            "missing": [f"{b}/{a}/seed{s}" for b, a, s in results.missing]}
