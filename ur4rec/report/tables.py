"""Markdown tables in the layout of the paper's Tables 2, 3 and 6, with user-level statistics.

Cell: the mean over seeds of the list-level mean (± the SD over seeds when there are several). Marks: `*`
significantly better than the matched control, `†` significantly better than KAR: a two-sided paired t-test on
per-user values (a user's lists, then seeds, averaged first), Holm-adjusted over every comparison of the table
on that metric, at `report.alpha`. The reference scorers (TopPop, item-CF: no training, one value) close every
table as `reference` rows, the level a trained model has to clear.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ur4rec.eval.stats import (
    PairedTest,
    bootstrap_ci,
    holm,
    min_detectable_effect,
    paired_test,
)
from ur4rec.report.collect import Results
from ur4rec.report.plan import Arm, ReportPlan


@dataclass(frozen=True)
class Comparison:
    backbone: str
    arm: str
    reference: str  # the arm compared against: the control, KAR, or a negative control's real twin
    test: PairedTest
    p_holm: float = 1.0


def reference_arms(plan: ReportPlan) -> tuple[Arm | None, Arm | None]:
    """(the control, KAR) among the plan's arms, read from the variants' kinds."""
    control = next((a for a in plan.arms if a.is_control), None)
    kar = next((a for a in plan.arms if a.is_kar), None)
    return control, kar


def compare(results: Results, backbone: str, arm: str, reference: str, metric: str,
            n_resamples: int = 2000) -> PairedTest | None:
    """Paired test of `arm` against `reference` on the users both were evaluated on, over their common seeds."""
    seeds = sorted(set(results.seeds(backbone, arm)) & set(results.seeds(backbone, reference)))
    if not seeds:
        return None
    users_a, a = results.user_matrix(backbone, reference, metric, seeds)
    users_b, b = results.user_matrix(backbone, arm, metric, seeds)
    if not np.array_equal(users_a, users_b):
        raise ValueError(f"{results.dataset}/{backbone}: {arm} and {reference} were evaluated on different test users")
    return paired_test(a, b, n_resamples=n_resamples)


def tested(plan: ReportPlan, results: Results, pairs: list[tuple[str, str, str]], metric: str) -> list[Comparison]:
    """Paired tests of each (backbone, arm, reference) that has runs, Holm-adjusted as one family, in order."""
    found = [Comparison(backbone, arm, ref, test) for backbone, arm, ref in pairs
             if (test := compare(results, backbone, arm, ref, metric, plan.cfg.bootstrap)) is not None]
    adjusted = holm([c.test.pvalue for c in found])
    return [replace(c, p_holm=float(p)) for c, p in zip(found, adjusted)]


def table_comparisons(plan: ReportPlan, results: Results, arms: list[Arm], metric: str) -> list[Comparison]:
    """Every arm against the control and against KAR (where both exist), Holm-adjusted as one family."""
    control, kar = reference_arms(plan)
    pairs = [(backbone, arm.name, ref.name) for backbone in plan.backbones for arm in arms for ref in (control, kar)
             if not (ref is None or arm.is_base or arm.name == ref.name or (ref is kar and arm.is_control))]
    return tested(plan, results, pairs, metric)


def fmt_cell(values: list[float]) -> str:
    mean = float(np.mean(values))
    return f"{mean:.4f} ± {np.std(values, ddof=1):.4f}" if len(values) > 1 else f"{mean:.4f}"


def short(metric: str) -> str:
    return metric.replace("map@", "M@").replace("ndcg@", "N@")


def results_table(plan: ReportPlan, results: Results, arms: list[Arm], metrics: list[str]) -> str:
    """One row per backbone x arm, marks from a Holm family per metric column."""
    control, kar = reference_arms(plan)
    marks: dict[tuple[str, str, str], str] = {}
    for metric in metrics:
        for c in table_comparisons(plan, results, arms, metric):
            if c.p_holm < plan.cfg.alpha and c.test.diff > 0:
                mark = "*" if control is not None and c.reference == control.name else "†"
                marks[(c.backbone, c.arm, metric)] = marks.get((c.backbone, c.arm, metric), "") + mark
    lines = ["| Backbone | Arm | " + " | ".join(short(m) for m in metrics) + " |", "|---|---|" + "---:|" * len(metrics)]
    for backbone in plan.backbones:
        for arm in arms:
            if not results.has(backbone, arm.name):
                continue
            cells = [fmt_cell(results.values(backbone, arm.name, m)) + marks.get((backbone, arm.name, m), "")
                     for m in metrics]
            lines.append(f"| {backbone} | {arm.name} | " + " | ".join(cells) + " |")
    for name, ref in results.references.items():
        lines.append(f"| reference | {name} | " + " | ".join(f"{ref.mean(m):.4f}" for m in metrics) + " |")
    return "\n".join(lines)


def comparison_table(plan: ReportPlan, results: Results, arms: list[Arm], metric: str) -> tuple[str, list[Comparison]]:
    """Focus-metric table: value with its 95% user-bootstrap CI, and each comparison's difference, CI, raw and
    Holm-adjusted p."""
    comparisons = table_comparisons(plan, results, arms, metric)
    by_key = {(c.backbone, c.arm, c.reference): c for c in comparisons}
    control, kar = reference_arms(plan)
    refs = [r for r in (control, kar) if r is not None]
    head = f"| Backbone | Arm | {short(metric)} [95% CI] |"
    rule = "|---|---|---:|"
    for ref in refs:
        head += f" Δ vs {ref.name} [95% CI] | p | p Holm |"
        rule += "---:|---:|---:|"
    lines = [head, rule]
    for backbone in plan.backbones:
        for arm in arms:
            seeds = results.seeds(backbone, arm.name)
            if not seeds:
                continue
            _, per_user = results.user_matrix(backbone, arm.name, metric, seeds)
            low, high = bootstrap_ci(per_user, n_resamples=plan.cfg.bootstrap)
            row = f"| {backbone} | {arm.name} | {np.mean(results.values(backbone, arm.name, metric)):.4f} [{low:.4f}, {high:.4f}] |"
            for ref in refs:
                c = by_key.get((backbone, arm.name, ref.name))
                row += (" | | |" if c is None else
                        f" {c.test.diff:+.4f} [{c.test.ci_low:+.4f}, {c.test.ci_high:+.4f}] | {c.test.pvalue:.3g} | {c.p_holm:.3g} |")
            lines.append(row)
    for name, ref in results.references.items():
        low, high = bootstrap_ci(ref.per_user(metric)[1], n_resamples=plan.cfg.bootstrap)
        lines.append(f"| reference | {name} | {ref.mean(metric):.4f} [{low:.4f}, {high:.4f}] |" + " | | |" * len(refs))
    return "\n".join(lines), comparisons


def control_mdes(plan: ReportPlan, comparisons: list[Comparison], alpha: float) -> list[float]:
    """The minimum detectable difference of each of the table's comparisons against the control, at `alpha`."""
    control, _ = reference_arms(plan)
    return [min_detectable_effect(c.test.sd_diff, c.test.n_users, alpha, plan.cfg.power) for c in comparisons
            if control is not None and c.reference == control.name]


def table_mde(plan: ReportPlan, comparisons: list[Comparison]) -> float | None:
    """The median minimum detectable difference of the table's control comparisons, at `report.alpha`."""
    mdes = control_mdes(plan, comparisons, plan.cfg.alpha)
    return float(np.median(mdes)) if mdes else None


def equivalence_table(plan: ReportPlan, comparisons: list[Comparison], metric: str) -> str:
    """Each negative control against its control: equivalent when the 95% CI of the difference lies inside
    ± the table's MDE; different when the Holm-adjusted test rejects; otherwise inconclusive (too little power
    to tell). A content-free arm that differs means the machinery, not the content, moves the score."""
    control, _ = reference_arms(plan)
    margin = table_mde(plan, comparisons)
    if control is None or margin is None:
        return ""
    lines = [f"| Backbone | Arm | Δ {short(metric)} vs {control.name} [95% CI] | inside ± {margin:.4f} | p Holm | verdict |",
             "|---|---|---:|:---:|---:|---|"]
    for c in comparisons:
        if c.reference != control.name or c.arm == control.name:
            continue
        inside = -margin <= c.test.ci_low and c.test.ci_high <= margin
        verdict = ("differs" if c.p_holm < plan.cfg.alpha else "equivalent" if inside else "inconclusive")
        lines.append(f"| {c.backbone} | {c.arm} | {c.test.diff:+.4f} [{c.test.ci_low:+.4f}, {c.test.ci_high:+.4f}] | "
                     f"{'yes' if inside else 'no'} | {c.p_holm:.3g} | {verdict} |")
    return "\n".join(lines)


def real_twin(arm: Arm, arms: list[Arm]) -> Arm | None:
    """The arm a negative control stands in for: the same variant (kind, Z source, objectives, proxies, KAR
    sizes) with real content, outside the negative-control family; None when the plan has none."""
    if arm.variant is None:
        return None

    def core(v):
        return replace(v, content="real", item_content="real", content_seed=0, family="main")

    return next((a for a in arms if a.variant is not None and a.family != "negative_control"
                 and core(a.variant) == core(arm.variant)), None)


def content_table(plan: ReportPlan, results: Results, negatives: list[Arm], metric: str) -> str:
    """Each real arm against its content-free twins (`real_twin`), paired per user, Holm over the table: what
    the content adds once the arm's machinery (its fusion, adaptor or retriever, its training) is held fixed.
    Read beside the control table: a twin that moves away from the control by as much as the real arm says
    the machinery, not the content, moved the score."""
    twins = [(twin, arm) for arm in negatives if (twin := real_twin(arm, plan.arms)) is not None]
    found = tested(plan, results, [(b, twin.name, arm.name) for b in plan.backbones for twin, arm in twins], metric)
    if not found:
        return ""
    lines = [f"| Backbone | Arm | Content-free twin | Δ {short(metric)} arm − twin [95% CI] | p | p Holm |",
             "|---|---|---|---:|---:|---:|"]
    for c in found:
        lines.append(f"| {c.backbone} | {c.arm} | {c.reference} | {c.test.diff:+.4f} [{c.test.ci_low:+.4f}, "
                     f"{c.test.ci_high:+.4f}] | {c.test.pvalue:.3g} | {c.p_holm:.3g} |")
    return "\n".join(lines)


def ablation_table(plan: ReportPlan, results: Results, full: Arm, ablations: list[Arm], metric: str) -> str:
    """Each ablation against the full model it removes a part from (the paper's Table 3 reading), paired per
    user over common seeds, Holm over the table, with each comparison's own MDE: `differs` when Holm rejects,
    `within MDE` when the 95% CI lies inside ± that MDE, otherwise `inconclusive`. The control table above
    says whether an ablation still helps; this one says whether the removed part mattered."""
    found = tested(plan, results, [(b, arm.name, full.name) for b in plan.backbones for arm in ablations], metric)
    if not found:
        return ""
    lines = [f"| Backbone | Ablation | Δ {short(metric)} ablation − {full.name} [95% CI] | MDE | p | p Holm | verdict |",
             "|---|---|---:|---:|---:|---:|---|"]
    for c in found:
        mde = min_detectable_effect(c.test.sd_diff, c.test.n_users, plan.cfg.alpha, plan.cfg.power)
        verdict = ("differs" if c.p_holm < plan.cfg.alpha else
                   "within MDE" if -mde <= c.test.ci_low and c.test.ci_high <= mde else "inconclusive")
        lines.append(f"| {c.backbone} | {c.arm} | {c.test.diff:+.4f} [{c.test.ci_low:+.4f}, {c.test.ci_high:+.4f}] | "
                     f"{mde:.4f} | {c.test.pvalue:.3g} | {c.p_holm:.3g} | {verdict} |")
    return "\n".join(lines)


def mde_note(plan: ReportPlan, comparisons: list[Comparison], metric: str) -> str:
    """The minimum detectable difference of the table's control comparisons, and what it implies."""
    control, _ = reference_arms(plan)
    tests = [c.test for c in comparisons if control is not None and c.reference == control.name]
    if not tests:
        return ""
    n = int(np.median([t.n_users for t in tests]))
    family = max(len(comparisons), 1)
    raw = control_mdes(plan, comparisons, plan.cfg.alpha)
    strict = control_mdes(plan, comparisons, plan.cfg.alpha / family)
    return (f"Minimum detectable {metric.upper()} difference against the control ({plan.cfg.power:.0%} power, "
            f"two-sided paired t-test on {n} test users): median {np.median(raw):.4f} (range {min(raw):.4f}–"
            f"{max(raw):.4f}) at α = {plan.cfg.alpha}; {np.median(strict):.4f} at the Bonferroni level "
            f"α / {family} that bounds Holm's first step. A difference below it that is not significant is a lack "
            "of power, not evidence of no effect; one above it that is not significant is a null result.")
