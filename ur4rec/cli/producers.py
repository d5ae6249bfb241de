"""Which stage writes a file: the fix named when an artifact is found damaged.

Read from the pipeline being run (`dvc.yaml` in the working folder, itself generated from the stage table
`ur4rec.runs.stages`, so the two agree): a path under one of a stage's outputs, its `${item...}` placeholders
filled from the path, gives the DVC stage name (`prepare@ml-100k`, `train@ml-100k-prm-0`: DVC joins a matrix
stage's values with `-` in the matrix's order). Reading the file instead of importing the table keeps the
stage scripts' code fingerprints free of the model registry the table imports.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import yaml

PIPELINE = Path("dvc.yaml")
_PLACEHOLDER = re.compile(r"\\\$\\\{item(?:\\\.(\w+))?\\\}")


def _pattern(template: str) -> re.Pattern[str]:
    """An output template as a regex matching the output itself or anything inside it."""
    body = _PLACEHOLDER.sub(lambda m: f"(?P<{m.group(1) or 'item'}>[^/]+)", re.escape(template))
    return re.compile(f"(?:^|.*/){body}(?:/.*)?$")


def producing_stage(path: str | os.PathLike[str], pipeline: Path = PIPELINE) -> str | None:
    """The DVC stage (with its foreach / matrix values) whose outputs hold `path`; None when none does (or
    there is no readable pipeline file here)."""
    try:
        stages = (yaml.safe_load(pipeline.read_text(encoding="utf-8")) or {}).get("stages") or {}
    except (OSError, yaml.YAMLError, AttributeError):
        return None
    text = Path(path).as_posix()
    for name, entry in stages.items():
        body = entry.get("do", entry) if isinstance(entry, dict) else {}
        for out in body.get("outs") or []:
            template = out if isinstance(out, str) else next(iter(out), "")
            match = _pattern(str(template)).match(text)
            if not match:
                continue
            values = match.groupdict()
            matrix = entry.get("matrix")
            if matrix:
                return f"{name}@" + "-".join(values.get(key, "") for key in matrix)
            return f"{name}@{values['item']}" if "item" in values else name
    return None
