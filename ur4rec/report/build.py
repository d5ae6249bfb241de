"""The report stage: tables, significance tests and plots for one dataset, into `data/report/<ds>/`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import math

from ur4rec.config import get_path, section
from ur4rec.eval.metrics import parse_metric
from ur4rec.io import write_json, write_text
from ur4rec.paths import report_dir
from ur4rec.report.collect import BASE, collect_runs
from ur4rec.report.plots import proxy_sweep, variant_bars
from ur4rec.report.tables import build_cells, pvalue_table, results_table

ABLATION_PREFIX = "ur4rec-"


@dataclass
class ReportConfig:
    alpha: float = 0.05
    focus_metric: str = "ndcg@10"     # the metric of the p-value table and the plots


def random_expectation(metric: str, n_candidates: int) -> float:
    """Expected value of `metric` when the target's rank is uniform over the candidates (one relevant item)."""
    name, k = parse_metric(metric)
    ranks = range(1, min(k, n_candidates) + 1)
    gain = (lambda r: 1 / math.log2(r + 1)) if name == "ndcg" else (lambda r: 1 / r)
    return sum(gain(r) for r in ranks) / n_candidates


def build_report(dataset: str, params: Mapping[str, Any], root: Path | None = None) -> dict[str, Any]:
    """Write results.md, results.json and plots for every run of `dataset` named by params."""
    cfg = section(ReportConfig, get_path(params, "report", {}), where="report")
    backbones = list(get_path(params, "backbones"))
    variants = [BASE, *[v for v in get_path(params, "variants") if v != BASE]]
    runset = collect_runs(dataset, backbones, variants, root)
    ks = list(get_path(params, "evaluate.ks", [1, 5, 10, 20]))
    metrics = [f"{m}@{k}" for m in ("map", "ndcg") for k in ks]
    cells = build_cells(runset, metrics)
    out = (report_dir(root) if root else report_dir()) / dataset
    n_candidates = int(get_path(params, "prepare.n_candidates", 100))
    random_focus = random_expectation(cfg.focus_metric, n_candidates)

    main_variants = [v for v in variants if not v.startswith(ABLATION_PREFIX)]
    ablations = ["ur4rec", *[v for v in variants if v.startswith(ABLATION_PREFIX)]]
    parts = [
        f"# {dataset}: test results\n",
        f"{len(runset.runs)} runs. `*` significantly better than Base, `†` significantly better than KAR "
        f"(paired t-test on the same test samples, p < {cfg.alpha}). Random ranking of {n_candidates} "
        f"candidates: {cfg.focus_metric.upper()} ≈ {random_focus:.4f}.\n",
        "## Main results\n",
        results_table(runset, cells, metrics, main_variants, cfg.alpha),
        f"\n## Significance on {cfg.focus_metric.upper()}\n",
        pvalue_table(runset, cells, cfg.focus_metric, variants),
    ]
    if len(ablations) > 1:
        focus_k = parse_metric(cfg.focus_metric)[1]
        ab_metrics = [f"map@{focus_k}", cfg.focus_metric]
        parts += ["\n## Ablations\n", results_table(runset, cells, list(dict.fromkeys(ab_metrics)), ablations, cfg.alpha)]
    if runset.missing:
        parts += ["\n## Not evaluated\n", ", ".join(f"{b}/{v}" for b, v in runset.missing)]
    parts.append("\n![bars](bars.png)\n")
    variant_bars(runset, main_variants, cfg.focus_metric, random_focus, out / "bars.png")
    if proxy_sweep(runset, cfg.focus_metric, out / "proxy_sweep.png"):
        parts.append("![proxy sweep](proxy_sweep.png)\n")
    write_text(out / "results.md", "\n".join(parts) + "\n")

    summary = {
        "dataset": dataset,
        "random": {cfg.focus_metric: random_focus},
        "missing": [f"{b}/{v}" for b, v in runset.missing],
        "runs": {
            f"{b}/{v}": {
                **run.metrics,
                **{f"p_vs_base:{m}": cells[(b, v, m)].vs_base.pvalue for m in metrics if cells[(b, v, m)].vs_base},
                **{f"p_vs_kar:{m}": cells[(b, v, m)].vs_kar.pvalue for m in metrics if cells[(b, v, m)].vs_kar},
            }
            for (b, v), run in runset.runs.items()
        },
    }
    write_json(out / "results.json", summary)
    return summary
