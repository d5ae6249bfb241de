"""Data-parallel training from params: with `train.distributed.nproc` > 1 a training command (stage script or
CLI) runs itself again under torchrun, so the DVC stage commands stay the same (docs/scaling.md)."""

from __future__ import annotations

import os
import subprocess
import sys


def launched() -> bool:
    """True inside a process started by torchrun (whatever its process count)."""
    return "WORLD_SIZE" in os.environ


def relaunch_argv(nproc: int) -> list[str]:
    """This very command line again, under torchrun with `nproc` processes on this machine."""
    import __main__

    spec = getattr(__main__, "__spec__", None)  # set when started as `python -m module`
    target = ["-m", spec.name.removesuffix(".__main__")] if spec is not None else [sys.argv[0]]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
            *target, *sys.argv[1:]]


def distribute(nproc: int) -> None:
    """Return at once for one process, or inside torchrun (its process count wins); otherwise run this
    command again under torchrun with `nproc` processes and exit with its status."""
    if nproc <= 1 or launched():
        return
    sys.stdout.flush()
    sys.exit(subprocess.run(relaunch_argv(nproc)).returncode)
