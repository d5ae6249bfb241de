"""Which stage writes a file: the fix named when an artifact is found damaged.

Read from the one stage table (`ur4rec.runs.stages.STAGES`, which also renders `dvc.yaml`): a path under one of
a stage's outputs, its `${item...}` placeholders filled from the path, gives the DVC stage name
(`prepare@ml-100k`, `train@ml-100k-prm-0`: DVC joins a matrix stage's values with `-` in the matrix's order).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ur4rec.runs.stages import STAGES

_PLACEHOLDER = re.compile(r"\\\$\\\{item(?:\\\.(\w+))?\\\}")


def _pattern(template: str) -> re.Pattern[str]:
    """An output template as a regex matching the output itself or anything inside it."""
    body = _PLACEHOLDER.sub(lambda m: f"(?P<{m.group(1) or 'item'}>[^/]+)", re.escape(template))
    return re.compile(f"(?:^|.*/){body}(?:/.*)?$")


def producing_stage(path: str | os.PathLike[str]) -> str | None:
    """The DVC stage (with its foreach / matrix values) whose outputs hold `path`; None when no stage does."""
    text = Path(path).as_posix()
    for name, stage in STAGES.items():
        for out in stage.outs:
            template = out if isinstance(out, str) else next(iter(out))  # type: ignore[call-overload]
            match = _pattern(template).match(text)
            if not match:
                continue
            values = match.groupdict()
            if stage.matrix:
                return f"{name}@" + "-".join(values[key] for key in stage.matrix)
            return f"{name}@{values['item']}" if "item" in values else name
    return None
