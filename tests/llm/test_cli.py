"""`ur4rec cache stats|compact|push|pull` and `ur4rec generate` on real files and a real DVC remote."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.conftest import REPO_ROOT
from tests.llm.test_cache import rec
from ur4rec.cli.app import app
from ur4rec.llm.cache import LLMCache

runner = CliRunner()


def test_cache_stats_shows_entries_size_statuses_and_hit_rate(tmp_path):
    cache = LLMCache(tmp_path / "llm")
    cache.append([rec("a"), rec("b", status="degenerate")])
    cache.append([rec("c")])
    cache.log_lookups(dataset="ml-100k", prompts=10, hits=0, generated=10)
    cache.log_lookups(dataset="ml-100k", prompts=10, hits=10, generated=0)
    sets = ["-S", f"llm.cache_dir={tmp_path / 'llm'}", "--params", str(REPO_ROOT / "params.yaml")]
    result = runner.invoke(app, ["cache", "stats", *sets])
    assert result.exit_code == 0, result.output
    assert "3 entries in 2 shards" in result.output
    assert "status degenerate: 1" in result.output and "status ok: 2" in result.output
    assert "hit rate: 50.0% over 2 runs" in result.output and "last run (ml-100k): 10/10" in result.output

    result = runner.invoke(app, ["cache", "compact", *sets])
    assert result.exit_code == 0 and "2 shards -> 1; 3 entries" in result.output


def test_generate_reports_a_bad_param_cleanly(tmp_path):
    result = runner.invoke(app, ["generate", "--dataset", "ml-100k", "--params", str(REPO_ROOT / "params.yaml"),
                                 "-S", "llm.backend=gpt"])
    assert result.exit_code != 0 and "llm.backend" in result.output


@pytest.mark.slow
def test_push_then_pull_shares_the_cache_and_keeps_local_shards(dvc_project, tmp_path):
    project = dvc_project()
    remote = tmp_path / "remote"
    project.run("dvc", "remote", "add", "-d", "team", str(remote))
    cache = LLMCache(project.root / "data" / "cache" / "llm")
    cache.append([rec("team-1"), rec("team-2")])
    cli = [sys.executable, "-c", "from ur4rec.cli.app import main; main()", "cache"]
    project.run(*cli, "push")
    assert (project.root / "data" / "cache" / "llm.dvc").exists() and any(remote.rglob("*"))

    # A teammate's clone: pull brings the shared shards and keeps a shard only this clone has.
    clone = tmp_path / "clone"
    # Everything but the cache folder and DVC's own state (the code under ur4rec/llm must come along).
    cache_folder = project.root / "data" / "cache"
    shutil.copytree(project.root, clone, ignore=lambda d, names: [n for n in names if n == ".dvc" or (
        Path(d) == cache_folder and n == "llm")])
    shutil.copytree(project.root / ".dvc", clone / ".dvc", ignore=shutil.ignore_patterns("cache", "tmp"))
    local = LLMCache(clone / "data" / "cache" / "llm")
    local.append([rec("mine")])
    env = dict(os.environ, PYTHONPATH=str(clone), DVC_NO_ANALYTICS="1")
    proc = subprocess.run([*cli, "pull"], cwd=clone, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "kept 1 local-only shard" in proc.stdout
    assert set(LLMCache(clone / "data" / "cache" / "llm").entries) == {"team-1", "team-2", "mine"}
