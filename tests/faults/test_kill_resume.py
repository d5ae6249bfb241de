"""SIGKILL in each training stage, then the same stage again: exactly the uninterrupted result, no leftover
temporary folders in the outputs, and a resume state written for other inputs is never reused."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO_ROOT
from tests.retriever.conftest import tiny_params, tiny_settings

pytestmark = pytest.mark.slow

# The child trains one stage and kills itself (SIGKILL: no cleanup runs) right after the loop saved its first
# epoch's resume state, the point a kill at any moment of the next epoch returns to.
CHILD = """
import os, signal, sys
from pathlib import Path
import ur4rec.train.loop as loop
from ur4rec.runs import training
from ur4rec.runs.settings import load_settings

real = loop.save_state
def save_then_die(*args, **kwargs):
    real(*args, **kwargs)
    os.kill(os.getpid(), signal.SIGKILL)
loop.save_state = save_then_die
stage, params, root, backbone = sys.argv[1:5]
s = load_settings(params)
getattr(training, stage)(s, "fx", backbone, 1, Path(root))
"""
STAGES = {"train": "train_base", "pretrain": "pretrain_seed", "train_aug": "train_arms"}


def run_stage(stage: str, s, root: Path, backbone: str = "prm") -> None:
    from ur4rec.runs import training
    from ur4rec.runs.spec import RunSpec

    if stage == "train":
        training.train(s, RunSpec("fx", backbone, None, 1), root)
    elif stage == "pretrain":
        training.pretrain_seed(s, "fx", backbone, 1, root)
    else:
        training.train_arms(s, "fx", backbone, 1, root)


def killed(stage: str, params: dict, root: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    path = tmp_path / f"params-{stage}.yaml"
    path.write_text(yaml.safe_dump(params))
    child = "from ur4rec.runs import training\ntraining.train_base = lambda s, d, b, k, r: training.train(" \
            "s, __import__('ur4rec.runs.spec', fromlist=['RunSpec']).RunSpec(d, b, None, k), r)\n" + CHILD
    proc = subprocess.run([sys.executable, "-c", child, STAGES[stage], str(path), str(root), "prm"],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == -9, proc.stderr[-2000:]  # it died by SIGKILL, as planned
    return proc


def outputs(root: Path, stage: str) -> dict[str, bytes]:
    """The stage's weights by relative path (what a rerun must reproduce exactly)."""
    folder = root / "fx" / "runs" / "prm" / "seed1" / {"train": "base/train", "pretrain": "pretrain",
                                                        "train_aug": "arms"}[stage]
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("model.safetensors"))}


def leftovers(root: Path) -> list[str]:
    runs = root / "fx" / "runs" / "prm" / "seed1"
    return sorted(str(p.relative_to(runs)) for p in runs.rglob(".*") if p.name.endswith(".tmp") and ".resume" not in p.parts)


@pytest.fixture(scope="module")
def seed1(tiny_project, tmp_path_factory):
    """A copy of the tiny project's data with the seed-1 Base run of prm (what pretrain and train_aug read)."""
    root, _ = tiny_project
    copy = tmp_path_factory.mktemp("faults") / "data"
    shutil.copytree(root, copy)
    return copy


@pytest.mark.parametrize("stage", ["train", "pretrain", "train_aug"])
def test_a_killed_stage_reruns_to_the_uninterrupted_result(stage, seed1, tiny_bert, tmp_path):
    variants = ["variants=[control,ur4rec]"]
    params, s = tiny_params(tiny_bert, *variants), tiny_settings(tiny_bert, *variants)
    straight, again, changed = (tmp_path / name for name in ("straight", "again", "changed"))
    for root in (straight, again, changed):
        shutil.copytree(seed1, root)
        for before in [k for k in STAGES if k != stage][: list(STAGES).index(stage)]:
            run_stage(before, s, root)  # the stages this one reads (Base; Base and pretrain)
    run_stage(stage, s, straight)
    expected = outputs(straight, stage)
    assert expected

    killed(stage, params, again, tmp_path)
    assert leftovers(again), "the kill left nothing to clean: this test would not see leftovers"
    run_stage(stage, s, again)
    assert outputs(again, stage) == expected
    assert leftovers(again) == []

    # killed, then rerun with another input: the old state is not reused, the result is the new setting's own
    other = ["backbone.prm.dropout=0.3"] if stage != "pretrain" else ["retriever.pretrain.lr=0.003"]
    killed(stage, params, changed, tmp_path)
    fresh = tmp_path / "fresh"
    shutil.copytree(seed1, fresh)
    s_other = tiny_settings(tiny_bert, *variants, *other)
    for before in [k for k in STAGES if k != stage][: list(STAGES).index(stage)]:
        run_stage(before, s_other if stage == "train" else s, fresh)
    run_stage(stage, s_other, fresh)
    run_stage(stage, s_other, changed)
    assert outputs(changed, stage) == outputs(fresh, stage) != expected
