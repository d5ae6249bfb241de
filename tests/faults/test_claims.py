"""Claims of a live generation are seen by the others; those of a killed one are freed (real processes, real flock)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from tests.conftest import REPO_ROOT
from ur4rec.llm.claims import Claims

HOLDER = """
import sys, time
from pathlib import Path
from ur4rec.llm.claims import Claims
with Claims(Path(sys.argv[1])) as claims:
    with claims.exclusive():
        claims.claim(["k1", "k2"])
    print("claimed", flush=True)
    time.sleep(600)
"""


def test_a_live_claim_is_seen_and_a_killed_ones_is_freed(tmp_path):
    root = tmp_path / "llm"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(root)], stdout=subprocess.PIPE, text=True,
                              env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)))
    try:
        assert holder.stdout.readline().strip() == "claimed"
        with Claims(root) as mine:
            with mine.exclusive():
                assert mine.others() == {"k1", "k2"}
            holder.send_signal(signal.SIGKILL)  # no cleanup runs: the kernel drops its lock
            holder.wait(timeout=30)
            time.sleep(0.1)
            with mine.exclusive():
                assert mine.others() == set()
            assert [p.name for p in root.with_name("llm.claims").glob("*.claim")] == [mine.path.name]
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
