"""Benchmark: the report page of the default run list, its size and its load time in headless Chromium.

The default run list (params.yaml: 5 backbones, Base + 5 arms, seed 0, `evaluate.drilldown_users` users) on the
real prepared ml-100k lists (../shared/data; the prepare stage runs here), with the evaluation outputs, training
logs and LLM texts of the shape the stages write (tests/report/fake_project.py: per-list ranks from random
scores, UR4Rec's attention over the backbone's real Z length, 700-character preference texts) — training every
default arm takes hours, the page's size and load time depend on the shape of what it shows, not on the numbers.

Load time: from navigation start to the page's script having rendered every Bokeh plot and the drill-down's
user list (`document.body.dataset.ready`, then every plot div filled), median of `--loads` fresh loads from disk
in the distribution's headless Chromium (chromium + chromium-driver), each in a new tab with the cache cleared.
Targets: page under 5 MB, load under 2 s. Writes bench/results/report_html.json.

    python bench/bench_report_html.py [--loads 5] [--keep DIR]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from common import machine, missing, prepare, settings, write_result

from tests.report.fake_project import write_llm, write_runs  # noqa: E402
from tests.report.test_browser import open_browser  # noqa: E402
from ur4rec.report.build import build_report  # noqa: E402
from ur4rec.runs.reporting import report_plan  # noqa: E402

DATASET = "ml-100k"
TEXT = ("This user enjoys character-driven dramas and thoughtful thrillers from the 1990s, with a soft spot for "
        "ensemble casts, sharp dialogue and morally ambiguous leads. They rate classic science fiction highly when "
        "it is grounded in ideas rather than spectacle, and they tend to dislike broad comedies, formulaic action "
        "sequels and children's films. Recent viewing suggests a growing interest in independent American cinema "
        "and European art-house titles, especially films that reward attention to detail and leave questions "
        "open. Expect them to prefer a slow, deliberate pace, strong performances and a memorable score. ")[:700]
TARGET_MB, TARGET_S = 5.0, 2.0


def load_seconds(page: Path, loads: int) -> list[float]:
    from selenium.webdriver.support.ui import WebDriverWait

    driver = open_browser()
    found = []
    try:
        for _ in range(loads):
            driver.execute_cdp_cmd("Network.clearBrowserCache", {})
            driver.get("about:blank")
            driver.get(page.as_uri())
            WebDriverWait(driver, 60).until(lambda d: d.execute_script(
                "return document.body.dataset.ready === '1' && window.Bokeh && "
                "[...document.querySelectorAll('div.plot')].every(e => e.children.length > 0)"))
            found.append(driver.execute_script("return performance.now()") / 1000)
    finally:
        driver.quit()
    return found


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--loads", type=int, default=5)
    parser.add_argument("--keep", type=Path, help="build under this folder and keep it (default: a temporary one)")
    args = parser.parse_args()
    s = settings()
    if missing(s, DATASET):
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        prepare(s, DATASET, root)
        import polars as pl

        prepared = root / DATASET / "prepared"
        users = pl.read_parquet(prepared / "users.parquet")["user_id"].to_numpy()
        items = pl.read_parquet(prepared / "items.parquet")["item_id"].to_numpy()
        write_llm(root, DATASET, users, items, lambda u: f"[user {u}] {TEXT}")
        plan = report_plan(s, DATASET)
        z = {b: s.per_backbone(b).z_history for b in plan.backbones}
        write_runs(root, plan, z_history=z)
        started = time.perf_counter()
        build_report(plan, root)
        build_s = time.perf_counter() - started
        page = root / "report" / DATASET / "index.html"
        size_mb = page.stat().st_size / 1e6
        loads = load_seconds(page, args.loads)
        median = statistics.median(loads)
        result = {"dataset": DATASET, "backbones": plan.backbones, "arms": [a.name for a in plan.arms],
                  "seeds": plan.seeds, "drilldown_users": plan.drilldown_users, "z_history": z,
                  "page_mb": round(size_mb, 3), "build_report_s": round(build_s, 2),
                  "load_s": [round(x, 3) for x in loads], "load_s_median": round(median, 3),
                  "targets": {"page_mb": TARGET_MB, "load_s": TARGET_S}, "machine": machine()}
        print(f"page {size_mb:.2f} MB (target < {TARGET_MB}); load median {median:.2f} s of {args.loads} "
              f"(target < {TARGET_S}); report stage {build_s:.1f} s")
        write_result("report_html", result)


if __name__ == "__main__":
    main()
