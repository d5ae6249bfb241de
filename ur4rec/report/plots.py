"""Plots where a picture beats a table: the focus metric per backbone and arm, the proxy-count sweep, and the
retriever's pre-training curves."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: the pipeline runs without a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ur4rec.io import atomic_path  # noqa: E402
from ur4rec.report.collect import Results  # noqa: E402
from ur4rec.report.plan import Arm, ReportPlan  # noqa: E402


def _save(fig, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)


def arm_bars(plan: ReportPlan, results: Results, arms: list[Arm], metric: str, random_value: float, path: Path) -> None:
    """Grouped bars: one group per backbone, one bar per arm (mean over seeds, whiskers: SD over seeds)."""
    backbones = [b for b in plan.backbones if any(results.has(b, a.name) for a in arms)]
    shown = [a for a in arms if any(results.has(b, a.name) for b in backbones)]
    width = 0.8 / max(len(shown), 1)
    fig, ax = plt.subplots(figsize=(max(6, 1.8 * len(backbones)), 4))
    for j, arm in enumerate(shown):
        xs, ys, errs = [], [], []
        for i, backbone in enumerate(backbones):
            values = results.values(backbone, arm.name, metric)
            if values:
                xs.append(i + j * width)
                ys.append(np.mean(values))
                errs.append(np.std(values, ddof=1) if len(values) > 1 else 0.0)
        ax.bar(xs, ys, width, yerr=errs, label=arm.name, capsize=2)
    ax.axhline(random_value, color="grey", linestyle="--", linewidth=1, label="random")
    ax.set_xticks([i + width * (len(shown) - 1) / 2 for i in range(len(backbones))], backbones)
    ax.set_ylabel(metric.upper())
    ax.set_title(f"{plan.dataset}: {metric.upper()} on the test split")
    ax.legend(fontsize=8, ncol=min(len(shown) + 1, 7), loc="upper center", bbox_to_anchor=(0.5, -0.1), frameon=False)
    _save(fig, path)


def proxy_sweep(plan: ReportPlan, results: Results, metric: str, path: Path) -> bool:
    """A line per backbone of `metric` against K, for the arms of family `proxy_sweep`; False if none ran."""
    series: dict[str, list[tuple[int, float]]] = {}
    for arm in plan.arms:
        if arm.family != "proxy_sweep":
            continue
        for backbone in plan.backbones:
            values = results.values(backbone, arm.name, metric)
            if values and backbone in arm.proxies:
                series.setdefault(backbone, []).append((arm.proxies[backbone], float(np.mean(values))))
    if not series:
        return False
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for backbone, points in sorted(series.items()):
        points.sort()
        ax.plot([k for k, _ in points], [v for _, v in points], marker="o", label=backbone)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("number of proxies K")
    ax.set_ylabel(metric.upper())
    ax.set_title(f"{plan.dataset}: proxy-count sensitivity")
    ax.legend()
    _save(fig, path)
    return True


def pretrain_curves(curves: dict[str, list[dict]], chance: float, path: Path) -> bool:
    """Train and validation InfoNCE per epoch for each pre-trained retriever (`label -> fit.json history`)."""
    curves = {k: v for k, v in curves.items() if v and "train_cl" in v[0]}
    if not curves:
        return False
    fig, ax = plt.subplots(figsize=(6, 3.8))
    for i, (label, history) in enumerate(sorted(curves.items())):
        epochs = [h["epoch"] + 1 for h in history]
        color = f"C{i % 10}"
        ax.plot(epochs, [h["train_cl"] for h in history], color=color, linestyle="--", marker=".")
        ax.plot(epochs, [h["valid_cl"] for h in history], color=color, marker="o", label=label)
    ax.axhline(chance, color="grey", linewidth=1, linestyle=":", label="chance ln(M+1)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("InfoNCE (dashed: train, solid: valid)")
    ax.set_title("retriever pre-training")
    ax.legend(fontsize=7)
    _save(fig, path)
    return True
