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

from ur4rec.cli import app
from ur4rec.cli.common import ParamsOpt, SetOpt, read_params
from ur4rec.config import DEFAULT_PARAMS, ParamsError

cache_app = typer.Typer(help="The shared LLM output cache (data/cache/llm): stats, compact, push, pull.", no_args_is_help=True)
app.add_typer(cache_app, name="cache")

RemoteOpt = Annotated[Optional[str], typer.Option("--remote", "-r", help="DVC remote name (default: the default remote).")]


@app.command()
def generate(
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="Dataset name, e.g. ml-100k.")],
    params: ParamsOpt = DEFAULT_PARAMS,
    sets: SetOpt = None,
) -> None:
    """Generate user preferences and item knowledge for a dataset into data/<dataset>/llm/."""
    from ur4rec.llm.backends import GenerationError
    from ur4rec.llm.config import dataset_domain, llm_config
    from ur4rec.llm.generate import generate_dataset
    from ur4rec.paths import DatasetPaths

    try:
        values = read_params(params, sets)
        summary = generate_dataset(llm_config(values), dataset_domain(values, dataset), DatasetPaths(dataset))
    except ParamsError as exc:
        raise typer.BadParameter(str(exc)) from exc
    except GenerationError as exc:
        typer.secho(str(exc), fg="red", err=True)
        raise typer.Exit(1) from exc
    typer.echo(
        f"{dataset}: {summary['unique_prompts']} prompts, {summary['cache_hits']} cached, {summary['generated']} "
        f"generated ({summary['output_tokens_per_s']} tok/s); statuses {json.dumps(summary['status'])}; "
        f"median echo share user {summary['echo']['user'].get('echo_share_median')}, "
        f"item {summary['echo']['item'].get('echo_share_median')}"
    )


def _cache(params: Path, sets: list[str] | None):
    from ur4rec.llm.cache import llm_cache
    from ur4rec.llm.config import llm_config

    try:
        return llm_cache(llm_config(read_params(params, sets)))
    except ParamsError as exc:
        raise typer.BadParameter(str(exc)) from exc


@cache_app.command("stats")
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


@cache_app.command("compact")
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


@cache_app.command("push")
def cache_push(remote: RemoteOpt = None, params: ParamsOpt = DEFAULT_PARAMS, sets: SetOpt = None) -> None:
    """Track the cache folder with DVC and push it; then commit the .dvc file with git."""
    root = _cache(params, sets).root
    _dvc("add", str(root))
    _dvc("push", f"{root}.dvc", *(["-r", remote] if remote else []))
    typer.echo(f"now: git add {root}.dvc && git commit -m 'LLM cache' && git push")


@cache_app.command("pull")
def cache_pull(remote: RemoteOpt = None, params: ParamsOpt = DEFAULT_PARAMS, sets: SetOpt = None) -> None:
    """Pull the team's cache (the version in the committed .dvc file), keeping local shards it lacks.

    `dvc pull` makes the folder equal to the tracked version; shards only this machine has are set aside
    first and put back, so the result is the union (shard names are unique, entries content-addressed).
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
