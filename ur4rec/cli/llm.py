"""CLI commands for LLM generation and its shared cache.

`ur4rec generate --dataset NAME` runs the stage function outside DVC (same code, same outputs).
`ur4rec cache stats|compact|push|pull` inspect and share the content-addressed cache; push and pull wrap
DVC (`dvc add` + `dvc push`, `dvc pull` that keeps local-only shards), so a team shares one cache.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Annotated, Optional

import typer

from ur4rec.cli.command import app, command
from ur4rec.cli.common import DatasetOpt, ParamsOpt, SetOpt, read_settings
from ur4rec.config import DEFAULT_PARAMS

cache_app = typer.Typer(help="The shared LLM output cache (data/cache/llm): stats, compact, push, pull.", no_args_is_help=True)
app.add_typer(cache_app, name="cache")

RemoteOpt = Annotated[Optional[str], typer.Option("--remote", "-r", help="DVC remote name (default: the default remote).")]


@command()
def generate(dataset: DatasetOpt, params: ParamsOpt = DEFAULT_PARAMS, sets: SetOpt = None) -> None:
    """Generate user preferences and item knowledge for a dataset into data/<dataset>/llm/."""
    from ur4rec.runs.generation import generate as run_generate

    summary = run_generate(read_settings(params, sets), dataset)
    typer.echo(
        f"{dataset}: {summary['unique_prompts']} prompts, {summary['cache_hits']} cached, {summary['generated']} "
        f"generated ({summary['output_tokens_per_s']} tok/s); statuses {json.dumps(summary['status'])}; "
        f"median echo share user {summary['echo']['user'].get('echo_share_median')}, "
        f"item {summary['echo']['item'].get('echo_share_median')}"
    )


def _cache(params: Path, sets: list[str] | None):
    from ur4rec.runs.generation import llm_cache

    return llm_cache(read_settings(params, sets))


@command(cache_app, "stats")
def cache_stats(params: ParamsOpt = DEFAULT_PARAMS, sets: SetOpt = None) -> None:
    """Entries, size, statuses and models in the cache, and the hit rate of the runs that used it."""
    cache = _cache(params, sets)
    st = cache.stats()
    typer.echo(f"cache {cache.root}: {st.entries} entries in {st.shards} shards, {st.bytes / 2**20:.2f} MiB")
    if st.duplicates:
        typer.echo(f"  {st.duplicates} duplicate rows (harmless; `ur4rec cache compact` removes them)")
    for label, counts in (("status", st.by_status), ("model", st.by_model)):
        for name, n in counts.items():
            typer.echo(f"  {label} {name}: {n}")
    runs = cache.lookups()
    if runs:
        prompts = sum(r.get("prompts", 0) for r in runs)
        hits = sum(r.get("hits", 0) for r in runs)
        last = runs[-1]
        typer.echo(
            f"hit rate: {hits / max(prompts, 1):.1%} over {len(runs)} runs ({hits}/{prompts} prompts); "
            f"last run ({last.get('dataset')}): {last.get('hits', 0)}/{last.get('prompts', 0)}"
        )
    else:
        typer.echo("hit rate: no runs recorded yet")


@command(cache_app, "compact")
def cache_compact(params: ParamsOpt = DEFAULT_PARAMS, sets: SetOpt = None) -> None:
    """Merge all shards into one (fewer files to hash, push and pull)."""
    cache = _cache(params, sets)
    before = len(cache.shards())
    cache.compact()
    typer.echo(f"{before} shards -> {len(cache.shards())}; {len(cache)} entries")


def _dvc(*args: str) -> None:
    typer.echo("$ dvc " + " ".join(args))
    proc = subprocess.run(["dvc", *args])
    if proc.returncode != 0:
        raise typer.Exit(proc.returncode)


@command(cache_app, "push")
def cache_push(remote: RemoteOpt = None, params: ParamsOpt = DEFAULT_PARAMS, sets: SetOpt = None) -> None:
    """Track the cache folder with DVC and push it; then commit the .dvc file with git."""
    root = _cache(params, sets).root
    _dvc("add", str(root))
    _dvc("push", f"{root}.dvc", *(["-r", remote] if remote else []))
    typer.echo(f"now: git add {root}.dvc && git commit -m 'LLM cache' && git push")


@command(cache_app, "pull")
def cache_pull(remote: RemoteOpt = None, params: ParamsOpt = DEFAULT_PARAMS, sets: SetOpt = None) -> None:
    """Pull the team's cache (the version in the committed .dvc file), keeping local shards it lacks.

    `dvc pull` makes the folder equal to the tracked version; shards only this machine has are set aside
    first and put back, so the result is the union (shard names are unique, entries content-addressed).
    Pulled shards are trusted no more than any other: a row is served only to the job it answers
    (`LLMCache.find`), and a shard contradicting its keys is set aside at the first lookup.
    """
    root = _cache(params, sets).root
    if not Path(f"{root}.dvc").exists():
        raise typer.BadParameter(f"{root}.dvc not found: someone must `ur4rec cache push` first (and commit it)")
    with tempfile.TemporaryDirectory(prefix="ur4rec-cache-", dir=root.parent if root.parent.exists() else None) as keep:
        local = sorted(root.glob("*.parquet")) if root.exists() else []
        for shard in local:
            shutil.copy2(shard, Path(keep) / shard.name)
        restored = 0
        try:
            # --force: DVC would otherwise refuse to replace the folder holding untracked shards; they are
            # copied aside above and put back below, whether the pull succeeds or not.
            _dvc("pull", "--force", f"{root}.dvc", *(["-r", remote] if remote else []))
        finally:
            root.mkdir(parents=True, exist_ok=True)
            for shard in Path(keep).glob("*.parquet"):
                if not (root / shard.name).exists():
                    shutil.copy2(shard, root / shard.name)
                    restored += 1
    typer.echo(f"pulled; kept {restored} local-only shard(s)")
