"""Plots where a picture beats a table: NDCG@10 per backbone and variant, and the proxy-count sweep."""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: the pipeline runs without a display
import matplotlib.pyplot as plt  # noqa: E402

from ur4rec.io import atomic_path  # noqa: E402
from ur4rec.report.collect import RunSet  # noqa: E402

K_SWEEP = re.compile(r"^ur4rec-k(\d+)$")


def _save(fig, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)


def variant_bars(runset: RunSet, variants: list[str], metric: str, random_value: float, path: Path) -> None:
    """Grouped bars: one group per backbone, one bar per variant, a dashed line at random ranking."""
    backbones = list(dict.fromkeys(b for b, _ in runset.runs))
    shown = [v for v in variants if any((b, v) in runset.runs for b in backbones) and not K_SWEEP.match(v)]
    width = 0.8 / max(len(shown), 1)
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(backbones)), 4))
    for j, variant in enumerate(shown):
        xs = [i + j * width for i, b in enumerate(backbones) if (b, variant) in runset.runs]
        ys = [runset.runs[(b, variant)].metrics[metric] for b in backbones if (b, variant) in runset.runs]
        ax.bar(xs, ys, width, label=variant)
    ax.axhline(random_value, color="grey", linestyle="--", linewidth=1, label="random")
    ax.set_xticks([i + width * (len(shown) - 1) / 2 for i in range(len(backbones))], backbones)
    ax.set_ylabel(metric.upper())
    ax.set_title(f"{runset.dataset}: {metric.upper()} on the test split")
    ax.legend(fontsize=8, ncol=min(len(shown) + 1, 6), loc="upper center", bbox_to_anchor=(0.5, -0.1), frameon=False)
    _save(fig, path)


def proxy_sweep(runset: RunSet, metric: str, path: Path) -> bool:
    """Line per backbone of `metric` against the proxy count K (variants `ur4rec-k<K>`); False if none ran."""
    series: dict[str, list[tuple[int, float]]] = {}
    for (backbone, variant), run in runset.runs.items():
        match = K_SWEEP.match(variant)
        if match:
            series.setdefault(backbone, []).append((int(match.group(1)), run.metrics[metric]))
    if not series:
        return False
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for backbone, points in sorted(series.items()):
        points.sort()
        ax.plot([k for k, _ in points], [v for _, v in points], marker="o", label=backbone)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("number of proxies K")
    ax.set_ylabel(metric.upper())
    ax.set_title(f"{runset.dataset}: proxy-count sensitivity")
    ax.legend()
    _save(fig, path)
    return True
