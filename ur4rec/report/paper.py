"""The paper's Table 2 (MAP@1,5 and NDCG@1,5 of Base, +BERT, +Llama2, KAR and UR4Rec on five backbones, three
datasets) as data, and the report section that prints it beside a run's own numbers.

The numbers are those printed in the paper (templates/paper_table2.csv; its significance marks dropped). A
dataset names the paper's columns it stands for with `dataset.<name>.paper_table`; nothing is read from names.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from ur4rec.report.collect import Results
from ur4rec.report.plan import Arm, ReportPlan

TABLE_FILE = Path(__file__).parent / "templates" / "paper_table2.csv"
METRICS = ("map@1", "map@5", "ndcg@1", "ndcg@5")
# the paper's arm names, by the row key of the CSV
ARM_LABELS = {"base": "Base", "bert": "+BERT", "llm": "+Llama2 (ours: +LLM)", "kar": "KAR", "ur4rec": "UR4Rec"}


def paper_rows(table: str) -> dict[tuple[str, str], dict[str, float]]:
    """(model, arm) -> the paper's four metrics, for one of its datasets."""
    with TABLE_FILE.open(newline="") as f:
        return {(r["model"], r["arm"]): {m: float(r[m]) for m in METRICS} for r in csv.DictReader(f)
                if r["table"] == table}


def paper_arm(arm: Arm) -> str | None:
    """Which of the paper's rows an arm stands for: Base and the main arms with real content."""
    if arm.is_base:
        return "base"
    v = arm.variant
    if v.family != "main" or (v.content, v.item_content) != ("real", "real") or v.kind not in ARM_LABELS:
        return None
    return v.kind


def paper_section(plan: ReportPlan, results: Results) -> list[str]:
    if plan.paper_table is None or not set(METRICS) <= set(plan.metrics):
        return []
    paper = paper_rows(plan.paper_table)
    rows = []
    for backbone in plan.backbones:
        model = plan.models.get(backbone, backbone)
        ours_base = np.mean(results.values(backbone, "base", "ndcg@5")) if results.has(backbone, "base") else None
        for arm in plan.arms:
            key = paper_arm(arm)
            if key is None or (model, key) not in paper or not results.has(backbone, arm.name):
                continue
            ours = {m: float(np.mean(results.values(backbone, arm.name, m))) for m in METRICS}
            theirs = paper[(model, key)]
            gain = "" if key == "base" or ours_base is None else (
                f"{ours['ndcg@5'] - ours_base:+.3f} / {theirs['ndcg@5'] - paper[(model, 'base')]['ndcg@5']:+.3f}")
            rows.append(f"| {backbone} | {ARM_LABELS[key]} | " + " | ".join(f"{ours[m]:.3f}" for m in METRICS) + " | "
                        + " | ".join(f"{theirs[m]:.3f}" for m in METRICS) + f" | {gain} |")
    if not rows:
        return []
    return [f"## The paper's Table 2 ({plan.paper_table}) beside ours\n",
            "Ours: this report's test means over seeds; the paper's: its Table 2 as printed. The settings differ "
            "(the LLM, the encoder, widths, users, candidate lists: docs/results.md); the gain column compares "
            "what each arm adds over its own Base.\n",
            "| Backbone | Arm | M@1 | M@5 | N@1 | N@5 | paper M@1 | paper M@5 | paper N@1 | paper N@5 "
            "| N@5 gain over Base: ours / paper |", "|---|---|" + "---:|" * 8 + "---:|", *rows, ""]
