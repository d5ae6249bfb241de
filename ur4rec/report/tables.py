"""Markdown tables in the layout of the paper's Tables 2, 3 and 6, with paired t-test marks.

Marks: `*` significantly better than Base, `†` significantly better than KAR (two-sided paired t-test on the
same test samples, p < alpha, and a higher mean).
"""

from __future__ import annotations

from dataclasses import dataclass

from ur4rec.eval.significance import PairedTest, compare_runs
from ur4rec.report.collect import BASE, RunSet

KAR = "kar"


@dataclass(frozen=True)
class Cell:
    value: float
    vs_base: PairedTest | None = None
    vs_kar: PairedTest | None = None

    def render(self, alpha: float) -> str:
        marks = ""
        if self.vs_base is not None and self.vs_base.significant(alpha) and self.vs_base.mean_diff > 0:
            marks += "*"
        if self.vs_kar is not None and self.vs_kar.significant(alpha) and self.vs_kar.mean_diff > 0:
            marks += "†"
        return f"{self.value:.4f}{marks}"


def build_cells(runset: RunSet, metrics: list[str]) -> dict[tuple[str, str, str], Cell]:
    """(backbone, variant, metric) -> Cell with tests against the same backbone's Base and KAR runs."""
    cells: dict[tuple[str, str, str], Cell] = {}
    for (backbone, variant), run in runset.runs.items():
        base = runset.get(backbone, BASE)
        kar = runset.get(backbone, KAR)
        for metric in metrics:
            vs_base = compare_runs(base.per_sample, run.per_sample, metric) if base and variant != BASE else None
            vs_kar = compare_runs(kar.per_sample, run.per_sample, metric) if kar and variant not in (BASE, KAR) else None
            cells[(backbone, variant, metric)] = Cell(run.metrics[metric], vs_base, vs_kar)
    return cells


def _header(metrics: list[str]) -> list[str]:
    names = [m.replace("map@", "M@").replace("ndcg@", "N@") for m in metrics]
    return ["| Backbone | Variant | " + " | ".join(names) + " |", "|---|---|" + "---:|" * len(metrics)]


def results_table(runset: RunSet, cells: dict, metrics: list[str], variants: list[str], alpha: float) -> str:
    """One row per backbone x variant (Table 2 / Table 6 layout)."""
    lines = _header(metrics)
    backbones = list(dict.fromkeys(b for b, _ in runset.runs))
    for backbone in backbones:
        for variant in [v for v in variants if (backbone, v) in runset.runs]:
            row = [cells[(backbone, variant, m)].render(alpha) for m in metrics]
            lines.append(f"| {backbone} | {variant} | " + " | ".join(row) + " |")
    return "\n".join(lines)


def pvalue_table(runset: RunSet, cells: dict, metric: str, variants: list[str]) -> str:
    """p-values of each variant against Base and KAR on one metric."""
    lines = [f"| Backbone | Variant | {metric} | Δ vs Base | p vs Base | Δ vs KAR | p vs KAR |", "|---|---|---:|---:|---:|---:|---:|"]
    for (backbone, variant), _ in sorted(runset.runs.items(), key=lambda kv: (kv[0][0], variants.index(kv[0][1]) if kv[0][1] in variants else 99)):
        cell = cells[(backbone, variant, metric)]
        b, k = cell.vs_base, cell.vs_kar
        fmt = lambda t, attr: "" if t is None else (f"{t.mean_diff:+.4f}" if attr == "d" else f"{t.pvalue:.3g}")  # noqa: E731
        lines.append(f"| {backbone} | {variant} | {cell.value:.4f} | {fmt(b, 'd')} | {fmt(b, 'p')} | {fmt(k, 'd')} | {fmt(k, 'p')} |")
    return "\n".join(lines)
