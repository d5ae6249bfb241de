"""Benchmark: the prepare stage on the real datasets under ../shared/data, wall time and peak RSS.

Each dataset runs in its own fresh interpreter (so its peak RSS and CPU time are its own, read with wait4), one
after another; the CPU seconds are steadier than the wall time on a machine others keep busy.
ml-1m-partial is prepared with `prepare.train_samples_per_user: all` (every training interaction a list), the
setting of its target (issue #11: at most 30 s and 2 GB on the 2-core machine); the other shipped datasets with
the defaults. Prints each result against its target and writes `bench/results/prepare.json` with the Table-1
counts of each dataset.

    python bench/bench_prepare.py [DATASET ...]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import PARAMS, machine, missing, raw_dir, settings, write_result

DATASETS = ("ml-100k", "ml-1m-partial", "steam", "amazon-gift-cards", "amazon-magazines")
OVERRIDES = {"ml-1m-partial": ["prepare.train_samples_per_user=all"]}
TARGET = {"ml-1m-partial": {"wall_s": 30.0, "peak_rss_mb": 2048.0}}
RUN = ("import sys; from pathlib import Path; from ur4rec.runs.data import prepare; "
       "from ur4rec.runs.settings import load_settings; a = sys.argv; "
       "prepare(load_settings(a[1], a[5:]), a[2], raw_dir=Path(a[3]), out=Path(a[4]))")
STATS = ("users", "items", "interactions", "density", "samples", "filtering", "loader")


def measure(name: str, raw: Path, out: Path, overrides: list[str]) -> dict:
    """Wall time and peak RSS of one prepare run in a fresh interpreter (imports included)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(PARAMS.parent), os.environ.get("PYTHONPATH")])))
    log = out.with_suffix(".log")
    with log.open("wb") as err:
        start = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-c", RUN, str(PARAMS), name, str(raw), str(out), *overrides],
                                stderr=err, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"prepare {name} failed (exit {os.waitstatus_to_exitcode(status)}):\n"
                         + log.read_text(errors="replace")[-2000:])
    stats = json.loads((out / "stats.json").read_text())
    return {"overrides": overrides, "wall_s": round(wall, 2), "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
            "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
            **{k: stats[k] for k in STATS if k in stats}}


def line(name: str, r: dict) -> str:
    text = (f"{name:18s} {r['wall_s']:6.2f} s ({r['cpu_s']:6.2f} cpu s)  {r['peak_rss_mb']:7.1f} MB  "
            f"users {r['users']:6d}  items {r['items']:6d}  interactions {r['interactions']:8d}")
    for key, limit in TARGET.get(name, {}).items():
        text += f"  {key}/target {r[key] / limit:.2f}"
    return text + ("  (" + ", ".join(r["overrides"]) + ")" if r["overrides"] else "")


def main(names: list[str]) -> None:
    s = settings()
    results = {"machine": machine(), "targets": TARGET, "datasets": {}}
    with tempfile.TemporaryDirectory(prefix="bench-prepare-") as scratch:
        for name in names or DATASETS:
            if missing(s, name):
                continue
            result = measure(name, raw_dir(s, name), Path(scratch) / name, OVERRIDES.get(name, []))
            results["datasets"][name] = result
            print(line(name, result), flush=True)
    write_result("prepare", results)


if __name__ == "__main__":
    main(sys.argv[1:])
