"""Benchmark: the prepare stage on every real dataset under ../shared/data, wall time and peak RSS.

Each dataset runs in its own process (so its peak RSS is its own, read with wait4), one after another in this
run. Prints each result against the target (ml-1m-partial: <= 20 s, <= 1.5 GB on a 2-core machine) and writes
`bench/results/prepare.json` with the Table-1 counts of each dataset.

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

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("UR4REC_SHARED_DATA", ROOT.parent / "shared" / "data"))
# dataset name in params.yaml -> folder under the shared data
DATASETS = {
    "ml-100k": "ml-100k",
    "ml-1m-partial": "ml-1m-partial",
    "steam": "steam",
    "amazon-gift-cards": "amazon-2018-5core",
    "amazon-magazines": "amazon-2018-5core",
}
TARGET = {"ml-1m-partial": {"wall_s": 20.0, "peak_rss_mb": 1536.0}}
RUN = (
    "import sys; from ur4rec.config import load_params; from ur4rec.data.prepare import prepare_dataset; "
    "prepare_dataset(load_params(sys.argv[1]), sys.argv[2], raw_dir=sys.argv[3], out=sys.argv[4])"
)


def measure(name: str, raw: Path, out: Path) -> dict:
    """Wall time and peak RSS of one prepare run in a fresh interpreter."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", RUN, str(ROOT / "params.yaml"), name, str(raw), str(out)],
        stderr=subprocess.DEVNULL,
    )
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"prepare {name} failed (exit {os.waitstatus_to_exitcode(status)})")
    stats = json.loads((out / "stats.json").read_text())
    return {
        "wall_s": round(wall, 2),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        **{k: stats[k] for k in ("users", "items", "interactions", "density", "samples", "filtering", "loader")},
    }


def main(names: list[str]) -> None:
    results = {"cpu_count": os.cpu_count(), "datasets": {}}
    with tempfile.TemporaryDirectory() as scratch:
        for name in names or list(DATASETS):
            raw = SHARED / DATASETS[name]
            if not raw.exists():
                print(f"{name}: skipped, {raw} not found (set UR4REC_SHARED_DATA)")
                continue
            result = measure(name, raw, Path(scratch) / name)
            results["datasets"][name] = result
            line = f"{name:18s} {result['wall_s']:6.2f} s  {result['peak_rss_mb']:7.1f} MB  " \
                   f"users {result['users']:6d}  items {result['items']:6d}  interactions {result['interactions']:8d}"
            for key, limit in TARGET.get(name, {}).items():
                line += f"  {key}/target {result[key] / limit:.2f}"
            print(line)
    out = ROOT / "bench" / "results" / "prepare.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main(sys.argv[1:])
