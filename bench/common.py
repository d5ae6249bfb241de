"""What the benchmarks share: the real data, settings, a prepared data root, timing, and the results file.

Benchmarks build and run everything through `ur4rec.runs` (issue #10): the pieces here only locate data,
time calls and cut a run's task to its first batches, so a timing covers the same code a run executes.
"""

from __future__ import annotations

import itertools
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # `python bench/x.py` puts bench/ first on the path, not the checkout
    sys.path.insert(0, str(REPO))

from ur4rec.runs import data  # noqa: E402
from ur4rec.runs.settings import Settings, load_settings  # noqa: E402

SHARED = Path(os.environ.get("UR4REC_SHARED_DATA", REPO.parent / "shared" / "data"))
RESULTS = REPO / "bench" / "results"
PARAMS = REPO / "params.yaml"


def settings(overrides: list[str] | tuple[str, ...] = ()) -> Settings:
    """The shipped params with `key.path=value` overrides, checked as a stage checks them."""
    return load_settings(PARAMS, list(overrides))


def raw_dir(s: Settings, dataset: str) -> Path:
    return SHARED / s.dataset_config(dataset).raw_name


def missing(s: Settings, dataset: str) -> bool:
    """True (after saying so) when the real raw files of `dataset` are not beside the checkout."""
    path = raw_dir(s, dataset)
    if path.exists():
        return False
    print(f"skipped {dataset}: real raw files not found at {path} (set UR4REC_SHARED_DATA); nothing measured")
    return True


def prepare(s: Settings, dataset: str, root: Path) -> dict[str, Any]:
    """Prepare `dataset` from the shared raw files into `root` with the prepare stage."""
    return data.prepare(s, dataset, raw_dir=raw_dir(s, dataset), root=root)


def stand_in_generations(root: Path, dataset: str) -> int:
    """Give every prepared user and item an LLM row, status `failed`, where generation left none, so the encode
    stage runs (its policy then uses the raw texts). Returns the number of rows added."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    base = root / dataset
    added = 0
    for name, column, table in (("user_preferences", "user_id", "users"), ("item_knowledge", "item_id", "items")):
        ids = pq.read_table(base / "prepared" / f"{table}.parquet", columns=[column]).column(column).to_pylist()
        path = base / "llm" / f"{name}.parquet"
        have = pq.read_table(path) if path.exists() else None
        seen = set(have.column(column).to_pylist()) if have is not None else set()
        new = [i for i in ids if i not in seen]
        rows = pa.table({column: pa.array(new, pa.int64()), "text": pa.array([""] * len(new), pa.string()),
                         "status": pa.array(["failed"] * len(new), pa.string())})
        if have is not None:
            rows = pa.concat_tables([have, rows], promote_options="permissive")
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(rows, path)
        added += len(new)
    return added


# ---------------------------------------------------------------- timing


def timed(fn: Callable[[], Any]) -> tuple[float, float]:
    """Wall and CPU seconds of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def best_of(repeats: int, *fns: Callable[[], Any]) -> list[float]:
    """Run the contenders alternately `repeats` times, so load from other processes hits them alike; the best
    wall time of each."""
    best = [float("inf")] * len(fns)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            wall, _ = timed(fn)
            best[i] = min(best[i], wall)
    return best


class FirstBatches:
    """A run's task cut to its first `n` training batches (or as many as `seconds` allow), batches moved to
    `device`: the loop's `train_epoch` then times part of an epoch of the real run."""

    def __init__(self, task, n: int | None = None, device: str | None = None, seconds: float | None = None):
        self.task, self.n, self.device, self.seconds = task, n, device, seconds
        self.select_mode, self.n_train = task.select_mode, task.n_train
        self.done = 0  # batches yielded by the last `batches` call

    def n_batches(self, batch_size: int) -> int:
        full = self.task.n_batches(batch_size)
        return full if self.n is None else min(self.n, full)

    def batches(self, batch_size: int, seed: int) -> Iterator[Any]:
        self.done, started = 0, time.perf_counter()
        for batch in itertools.islice(self.task.batches(batch_size, seed), self.n):
            if self.seconds is not None and self.done and time.perf_counter() - started > self.seconds:
                return
            self.done += 1
            yield batch if self.device is None else batch.to(self.device)

    def losses(self, model, batch):
        return self.task.losses(model, batch)


def epoch_runner(model, groups, task, cfg) -> Callable[[], dict[str, float]]:
    """A zero-argument call of the loop's `train_epoch` over `task`, with AdamW over `groups` as `fit` builds it."""
    from ur4rec.train.loop import make_optimizer, train_epoch

    optimizer = make_optimizer(model, cfg, groups)
    params = [p for group in optimizer.param_groups for p in group["params"]]
    return lambda: train_epoch(model, optimizer, task, cfg, 0, params)


# ---------------------------------------------------------------- results


def cpu_name() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        return next(line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
    except (OSError, StopIteration):
        return "unknown CPU"


def machine() -> dict[str, Any]:
    import torch

    return {"cpu": cpu_name(), "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "load_avg": [round(x, 2) for x in os.getloadavg()]}


def write_result(name: str, payload: dict[str, Any], path: Path | None = None) -> Path:
    path = path or RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {path}")
    return path
