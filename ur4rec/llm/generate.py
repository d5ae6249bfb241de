"""The generate stage: s_u for every user and s_i for every item of a dataset (paper §3.1).

1. Render f_u / f_i for each prepared user and item (`jobs`), as free text or, with `llm.structured`, as
   JSON schema answers; look every prompt up in the content-addressed cache.
2. Generate the misses (`answer`): on Ray engine actors first with `llm.backend: ray` or
   `llm.data_parallel_size` > 1 (`cluster`), then in this process whatever is still missing.
3. Write `user_preferences.parquet`, `item_knowledge.parquet` and `stats.json` atomically, with the echo
   measure of every output (`echo`) and its aggregate per kind.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Mapping

import pyarrow as pa

from ur4rec.io import write_json, write_parquet
from ur4rec.llm.answer import RunStats, answer_missing
from ur4rec.llm.backends import Backend, make_backend
from ur4rec.llm.cache import LLMCache, llm_cache
from ur4rec.llm.cluster import RayRun, generate_on_ray, require_ray
from ur4rec.llm.config import LLMConfig
from ur4rec.llm.echo import echo_share, echo_summary, titles_repeated
from ur4rec.llm.jobs import KINDS, Job, build_jobs, read_prepared
from ur4rec.paths import DatasetPaths

# kind -> (id column, output file)
OUTPUTS = {"user": ("user_id", "user_preferences.parquet"), "item": ("item_id", "item_knowledge.parquet")}
TABLE_SCHEMA = [
    ("prompt_hash", pa.string()),
    ("text", pa.string()),
    ("answer", pa.string()),  # the model's text alone: `text` without what code added (llm.item_title)
    ("n_prompt_tokens", pa.int32()),
    ("n_output_tokens", pa.int32()),
    ("finish_reason", pa.string()),
    ("status", pa.string()),
    ("attempts", pa.int16()),
    ("model", pa.string()),
    ("sampling_fingerprint", pa.string()),
    ("setting", pa.string()),  # free | structured
    ("prompt_order", pa.string()),
    ("schema_fingerprint", pa.string()),  # null for free text
    ("raw", pa.string()),  # the generated JSON (structured); null for free text
    ("echo_share", pa.float32()),
    ("titles_repeated", pa.int16()),
]


def generate_dataset(cfg: LLMConfig, domain: str, paths: DatasetPaths, backend: Backend | None = None) -> dict[str, Any]:
    """Run the stage for one dataset; returns the summary also written to `llm/stats.json`.

    A caller may pass a running `backend` (e.g. to reuse one engine for several datasets); it stays open.
    """
    require_ray(cfg)  # before any work: one line saying how to install it
    users, items = read_prepared(paths)
    owned = backend is None
    backend = make_backend(cfg) if owned else backend.reconfigure(cfg)
    try:
        jobs = build_jobs(backend, cfg, domain, users, items)
        cache = llm_cache(cfg, paths.root)
        remote = generate_on_ray(jobs, cache, cfg, backend) if cfg.on_ray else None
        failed = remote.errors if remote else {}
        # What the actors left (none, unless the Ray job failed) is generated here; their refusals are not retried.
        errors, stats = answer_missing([j for j in jobs if j.key not in failed], cache, backend, cfg, f"generate {paths.name}")
        if remote is not None:
            errors.update(failed)
            stats.add_remote(remote.stats, left_out=sum(j.key in failed for j in jobs), failed=len(failed))
    finally:
        if owned:
            backend.close()
    tables = {kind: output_table(jobs, kind, cache, errors, cfg) for kind in KINDS}
    summary = _summary(tables, stats, backend, cfg, jobs, remote)
    for kind, (_, filename) in OUTPUTS.items():
        write_parquet(paths.llm / filename, tables[kind])
    write_json(paths.llm / "stats.json", summary)
    cache.log_lookups(dataset=paths.name, prompts=stats.unique, hits=stats.hits, generated=stats.generated)
    return summary


def output_table(jobs: list[Job], kind: str, cache: LLMCache, errors: Mapping[str, dict], cfg: LLMConfig) -> pa.Table:
    id_col, _ = OUTPUTS[kind]
    rows = []
    for job in sorted((j for j in jobs if j.kind == kind), key=lambda j: j.id):
        rec = job.cached(cache) or errors[job.key]
        titled = kind == "item" and cfg.item_title == "code" and rec["status"] in ("ok", "truncated")
        rows.append({
            id_col: job.id,
            "prompt_hash": job.key,
            **{name: rec[name] for name in ("n_prompt_tokens", "n_output_tokens", "finish_reason", "status",
                                            "attempts", "model", "sampling_fingerprint", "raw")},
            "text": with_title(rec["text"], job.titles[0]) if titled else rec["text"],
            "answer": rec["text"],
            "setting": "structured" if job.schema else "free",
            "prompt_order": cfg.prompt_order,
            "schema_fingerprint": job.schema.fingerprint if job.schema else None,
            "echo_share": echo_share(rec["text"], job.data),
            "titles_repeated": titles_repeated(rec["text"], job.titles),
        })
    return pa.Table.from_pylist(rows, schema=pa.schema([(id_col, pa.int64()), *TABLE_SCHEMA]))


def with_title(text: str, title: str) -> str:
    """`<title>. <text>`: the item named first, then what the model wrote. Only usable answers get it: an empty,
    degenerate or failed one stays as it was, for its status and the encoder's replacement policy."""
    return f"{title.strip()}. {text}" if text.strip() else text


def _summary(tables: dict[str, pa.Table], stats: RunStats, backend: Backend, cfg: LLMConfig, jobs: list[Job],
             remote: RayRun | None) -> dict[str, Any]:
    schemas = {j.kind: j.schema.fingerprint for j in jobs if j.schema}
    ray = {"ray": {"workers": cfg.ray_workers, "engine": backend.name, **remote.summary()}} if remote is not None else {}
    return {
        "model": backend.model_identity,
        "backend": "ray" if cfg.on_ray else backend.name,
        **ray,
        "sampling": cfg.sampling.fingerprint(),
        "setting": {"structured": cfg.structured, "prompt_order": cfg.prompt_order, "schemas": schemas},
        "status": {kind: dict(sorted(Counter(t["status"].to_pylist()).items())) for kind, t in tables.items()},
        # The echo measure per kind (ur4rec.llm.echo): how much of the outputs is their prompt's data copied back.
        "echo": {kind: echo_summary(t.select(["echo_share", "titles_repeated", "finish_reason"]).to_pylist())
                 for kind, t in tables.items()},
        **stats.as_dict(),
    }
