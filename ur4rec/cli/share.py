"""`ur4rec share push|pull`: a team shares every result through one DVC remote (docs/sharing.md).

push: the LLM cache (when this clone has one), every pipeline output and the run-cache go to the remote;
then the files to commit are named (`dvc.lock` is what tells a teammate's DVC that the results exist).
pull: the LLM cache, every pushed output and the run-cache come back, then `fetch` copies the raw files from
this machine's own mirrors (raw data is never pushed: the licences forbid it). The same raw files hash the
same, so the downstream stages stay up to date and `dvc repro` has nothing to run.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from ur4rec.cli.command import app, command
from ur4rec.cli.common import ParamsOpt, SetOpt, read_settings, run_dvc
from ur4rec.cli.llm import RemoteOpt, cache_pull, cache_push
from ur4rec.config import DEFAULT_PARAMS
from ur4rec.errors import UserError
from ur4rec.paths import DATA_ROOT

share_app = typer.Typer(help="Share results with the team through the DVC remote: push, pull.", no_args_is_help=True)
app.add_typer(share_app, name="share")

PIPELINE = "dvc.yaml"   # the pipeline's outputs only: the LLM cache folder has its own union-keeping pull
LOCK = "dvc.lock"
FETCH_STAGE = "fetch"   # raw files, `push: false`; each clone copies them from its own mirrors
LlmCacheOpt = Annotated[bool, typer.Option("--llm-cache/--no-llm-cache", help="Share the LLM output cache too.")]


class RemoteError(UserError):
    """The DVC remote is not configured or not reachable from this machine."""


def remote_url(name: str | None) -> tuple[str, str]:
    """(name, url) of the remote to use: `name`, or the default one; a local path must already exist, so an
    unmounted share is reported instead of silently filled on the local disk."""
    from dvc.repo import Repo

    with Repo() as repo:
        config = repo.config
    name = name or config["core"].get("remote")
    if not name:
        raise RemoteError("no default DVC remote: add one with `dvc remote add -d team /path/to/store` "
                          "(see docs/sharing.md)")
    if name not in config["remote"]:
        raise RemoteError(f"no DVC remote named {name!r}; configured: {sorted(config['remote'])}")
    url = str(config["remote"][name]["url"])
    if "://" not in url and not Path(url).is_dir():
        raise RemoteError(
            f"DVC remote {name!r} is {url}, which does not exist here: mount the team's share, `mkdir -p {url}` "
            f"to start a new store, or point {name!r} elsewhere for this clone only with "
            f"`dvc remote modify --local {name} url /other/path` (or s3://bucket/ur4rec; see docs/sharing.md)")
    return name, url


def llm_cache_root(params: Path, sets: list[str] | None) -> Path:
    from ur4rec.runs.generation import llm_cache

    return llm_cache(read_settings(params, sets)).root


def fetch_outs(lock: Path = Path(LOCK)) -> dict[str, Any]:
    """The raw-data hashes `dvc.lock` records, by fetch stage."""
    if not lock.exists():
        return {}
    stages = (yaml.safe_load(lock.read_text(encoding="utf-8")) or {}).get("stages", {})
    return {name: entry.get("outs") for name, entry in stages.items() if name.split("@")[0] == FETCH_STAGE}


def uncommitted(paths: list[str]) -> list[str]:
    """Those of `paths` (files or folders) holding changes git has not committed."""
    return [path for path in paths
            if subprocess.run(["git", "status", "--porcelain", "--", path], capture_output=True, text=True).stdout]


@command(share_app, "push")
def share_push(remote: RemoteOpt = None, llm_cache: LlmCacheOpt = True, params: ParamsOpt = DEFAULT_PARAMS,
               sets: SetOpt = None) -> None:
    """Push the LLM cache, every pipeline output and the run-cache; then commit and push what it names."""
    name, url = remote_url(remote)
    typer.echo(f"sharing through DVC remote {name!r} ({url})")
    if llm_cache and any(llm_cache_root(params, sets).glob("*.parquet")):
        cache_push(remote=name, params=params, sets=sets)  # says to commit its .dvc file
    run_dvc("push", "--run-cache", "-r", name, PIPELINE)
    # dvc.lock says which results exist; the .gitignore files DVC writes under data/ are part of the folders
    # later stages read (the report reads data/<ds>/runs), so a clone without them reruns those stages.
    pending = uncommitted([LOCK, str(params), str(DATA_ROOT)])
    if pending:
        typer.echo(f"now commit what the team needs to see the results: git add {' '.join(pending)} && "
                   "git commit -m '<what changed>' && git push")
    else:
        typer.echo("pushed; dvc.lock is committed: teammates get these results with `ur4rec share pull`")


@command(share_app, "pull")
def share_pull(remote: RemoteOpt = None, llm_cache: LlmCacheOpt = True, params: ParamsOpt = DEFAULT_PARAMS,
               sets: SetOpt = None) -> None:
    """Pull the LLM cache, every pushed output and the run-cache, and copy the raw files from your mirrors."""
    name, url = remote_url(remote)
    typer.echo(f"pulling from DVC remote {name!r} ({url})")
    if llm_cache and Path(f"{llm_cache_root(params, sets)}.dvc").exists():
        cache_pull(remote=name, params=params, sets=sets)
    # --allow-missing: the raw files are never on the remote; `fetch` below brings them.
    run_dvc("pull", "--run-cache", "--allow-missing", "-r", name, PIPELINE)
    recorded = fetch_outs()
    run_dvc("repro", FETCH_STAGE)
    changed = sorted(stage for stage, outs in fetch_outs().items() if recorded.get(stage, outs) != outs)
    if changed:
        typer.echo(f"warning: the raw files from your mirror differ from the team's for {', '.join(changed)} "
                   "(dvc.lock changed): `dvc repro` reruns everything downstream of them", err=True)
    run_dvc("status")
