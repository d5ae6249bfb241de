"""One generation process for the concurrency test: it loads its engine, waits until every worker has, then
runs the generate stage (so the workers really overlap), and prints the stage's summary as JSON."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def main(params_file: str, data_root: str, barrier: str, name: str, workers: str) -> None:
    from ur4rec.llm.backends import make_backend
    from ur4rec.llm.generate import generate_dataset
    from ur4rec.paths import DatasetPaths
    from ur4rec.runs.settings import parse_settings

    settings = parse_settings(json.loads(Path(params_file).read_text()))
    backend = make_backend(settings.llm)
    backend.start()
    (Path(barrier) / f"{name}.ready").touch()
    deadline = time.monotonic() + 300
    while len(list(Path(barrier).glob("*.ready"))) < int(workers) and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        summary = generate_dataset(settings.llm, "movie", DatasetPaths("ml-100k", Path(data_root)), backend=backend)
    finally:
        backend.close()
    print(json.dumps({"generated": summary["generated"], "cache_hits": summary["cache_hits"],
                      "unique_prompts": summary["unique_prompts"]}))


if __name__ == "__main__":
    main(*sys.argv[1:])
