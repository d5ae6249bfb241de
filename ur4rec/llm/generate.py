"""The generate stage: s_u for every user and s_i for every item of a dataset (paper §3.1).

1. Render f_u / f_i for each prepared user and item, through the model's chat template.
2. Look every prompt up in the content-addressed cache; only misses are generated.
3. Generate misses sorted by prompt text (prompts sharing a prefix run together, so vLLM's prefix cache
   hits), flushing finished outputs to the cache every `llm.flush_every` prompts: a killed run loses at
   most that many, and the rerun starts where it stopped.
4. Outputs that are empty or loop (`llm.quality.retry_on`) are retried with the next seed, up to
   `llm.quality.max_retries` times; the final status is stored either way.
5. Write `user_preferences.parquet`, `item_knowledge.parquet` and `stats.json` atomically.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import polars as pl
import pyarrow as pa
from tqdm import tqdm

from ur4rec.io import write_json, write_parquet
from ur4rec.llm.backends import Backend, Completion, Request, make_backend
from ur4rec.llm.cache import LLMCache, cache_key
from ur4rec.llm.config import LLMConfig
from ur4rec.llm.prompts import Messages, item_context, load_template, user_context
from ur4rec.llm.quality import assess
from ur4rec.paths import DATA_ROOT, DatasetPaths, cache_dir

log = logging.getLogger(__name__)

# kind -> (id column, output file)
OUTPUTS = {"user": ("user_id", "user_preferences.parquet"), "item": ("item_id", "item_knowledge.parquet")}
USER_COLUMNS = ("user_id", "gender", "age", "occupation", "llm_history", "llm_history_ratings")
ITEM_COLUMNS = ("item_id", "title", "categories", "attributes")


@dataclass(frozen=True)
class Job:
    """One prompt to answer: which user or item it is for, and its cache key."""

    kind: str
    id: int
    messages: Messages
    prompt: str
    key: str


@dataclass
class RunStats:
    prompts: int = 0
    unique: int = 0
    hits: int = 0
    generated: int = 0
    retried: int = 0
    output_tokens: int = 0
    seconds: float = 0.0
    statuses: Counter = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        rate = self.output_tokens / self.seconds if self.seconds else 0.0
        return {
            "prompts": self.prompts,
            "unique_prompts": self.unique,
            "cache_hits": self.hits,
            "hit_rate": round(self.hits / self.unique, 4) if self.unique else 1.0,
            "generated": self.generated,
            "retried": self.retried,
            "generated_output_tokens": self.output_tokens,
            "generation_seconds": round(self.seconds, 2),
            "output_tokens_per_s": round(rate, 2),
            "prompts_per_s": round(self.generated / self.seconds, 3) if self.seconds else 0.0,
        }


# ---------------------------------------------------------------- inputs


def read_prepared(paths: DatasetPaths) -> tuple[list[dict], list[dict]]:
    """Prepared users and items, checked for the columns generation reads."""
    out = []
    for name, columns in (("users.parquet", USER_COLUMNS), ("items.parquet", ITEM_COLUMNS)):
        path = paths.prepared / name
        if not path.exists():
            raise FileNotFoundError(f"{path} not found: run the prepare stage first (dvc repro prepare@{paths.name})")
        frame = pl.read_parquet(path)
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise ValueError(f"{path}: missing column(s) {missing}")
        out.append(frame.select(columns).to_dicts())
    return out[0], out[1]


def build_jobs(
    backend: Backend, cfg: LLMConfig, domain: str, users: list[dict], items: list[dict]
) -> list[Job]:
    """Render f_u for every user and f_i for every item into prompts keyed for the cache."""
    if domain not in cfg.templates.item:
        raise ValueError(f"no item template for domain {domain!r}; add it to llm.templates.item")
    user_tpl = load_template(cfg.templates.user)
    item_tpl = load_template(cfg.templates.item[domain])
    by_id = {int(item["item_id"]): item for item in items}
    fingerprint = cfg.sampling.fingerprint()
    identity = backend.model_identity

    def job(kind: str, id_: int, messages: Messages) -> Job:
        prompt = backend.render(messages)
        return Job(kind, id_, messages, prompt, cache_key(identity, fingerprint, prompt))

    jobs = [job("user", int(u["user_id"]), user_tpl.messages(**user_context(u, by_id, domain))) for u in users]
    jobs += [job("item", int(i["item_id"]), item_tpl.messages(**item_context(i, domain))) for i in items]
    return jobs


# ---------------------------------------------------------------- generation


def _record(job: Job, completion: Completion, status: str, attempt: int, seed: int, backend: Backend, cfg: LLMConfig):
    return {
        "key": job.key,
        "model": backend.model_identity,
        "sampling_fingerprint": cfg.sampling.fingerprint(),
        "prompt": job.prompt,
        "text": completion.text.strip(),
        "n_prompt_tokens": completion.n_prompt_tokens,
        "n_output_tokens": completion.n_output_tokens,
        "finish_reason": completion.finish_reason,
        "status": status,
        "attempts": attempt,
        "seed": seed,
        "created_at": time.time(),
    }


class _CacheWriter:
    """Buffers finished outputs and writes them to the cache every `every` of them, as one shard each.

    `close` writes the remainder (also after an error, so a Ctrl-C or an engine crash loses nothing that
    finished) and merges this run's shards into one.
    """

    def __init__(self, cache: LLMCache, every: int):
        self.cache, self.every = cache, every
        self.buffer: list[dict] = []
        self.written: list[Path] = []

    def add(self, record: dict) -> None:
        self.buffer.append(record)
        if len(self.buffer) >= self.every:
            self._flush()

    def _flush(self) -> None:
        if self.buffer:
            self.written.append(self.cache.append(self.buffer))
            self.buffer = []

    def close(self) -> None:
        self._flush()
        if len(self.written) > 1:
            self.cache.compact(self.written)


def answer_missing(
    jobs: list[Job], cache: LLMCache, backend: Backend, cfg: LLMConfig, desc: str = "generate"
) -> tuple[dict[str, dict], RunStats]:
    """Generate every job whose key is not cached; returns the records that could not be cached (errors).

    Bad outputs (`llm.quality.retry_on`) go round again with the next seed; an output is stored once, with
    its final status and number of attempts.
    """
    stats = RunStats()
    unique = {job.key: job for job in jobs}
    missing = sorted((j for k, j in unique.items() if k not in cache), key=lambda j: j.prompt)
    stats.prompts, stats.unique, stats.hits = len(jobs), len(unique), len(unique) - len(missing)
    errors: dict[str, dict] = {}
    if not missing:
        return errors, stats
    backend.start()  # before the clock: engine start-up is not generation speed
    writer = _CacheWriter(cache, cfg.flush_every)
    started = time.perf_counter()
    bar = tqdm(total=len(missing), desc=desc, unit="prompt", dynamic_ncols=True, mininterval=1.0)
    try:
        pending, attempt = missing, 0
        while pending:
            seed = cfg.sampling.seed + attempt
            retry = []
            for completion in backend.generate([Request(j.key, j.prompt, j.messages, seed) for j in pending]):
                job = unique[completion.key]
                stats.output_tokens += completion.n_output_tokens
                status = "failed" if completion.finish_reason == "error" else assess(
                    completion.text, completion.finish_reason, cfg.quality)
                if status in cfg.quality.retry_on and attempt < cfg.quality.max_retries:
                    retry.append(job)
                    continue
                record = _record(job, completion, status, attempt + 1, seed, backend, cfg)
                if status == "failed":
                    # Not cached: a server hiccup or a rejected prompt should be tried again next run.
                    errors[job.key] = record
                    log.warning("%s %s: %s", job.kind, job.id, completion.error)
                else:
                    writer.add(record)
                bar.update(1)
                bar.set_postfix_str(f"{stats.output_tokens / (time.perf_counter() - started):.1f} tok/s", refresh=False)
            stats.retried += len(retry)
            pending, attempt = retry, attempt + 1
    finally:
        bar.close()
        writer.close()
    stats.seconds = time.perf_counter() - started
    stats.generated = len(missing)
    return errors, stats


# ---------------------------------------------------------------- the stage


def output_table(jobs: list[Job], kind: str, cache: LLMCache, errors: Mapping[str, dict]) -> pa.Table:
    id_col, _ = OUTPUTS[kind]
    rows = []
    for job in sorted((j for j in jobs if j.kind == kind), key=lambda j: j.id):
        rec = cache.get(job.key) or errors[job.key]
        rows.append(
            {
                id_col: job.id,
                "prompt_hash": job.key,
                "text": rec["text"],
                "n_prompt_tokens": rec["n_prompt_tokens"],
                "n_output_tokens": rec["n_output_tokens"],
                "finish_reason": rec["finish_reason"],
                "status": rec["status"],
                "attempts": rec["attempts"],
                "model": rec["model"],
                "sampling_fingerprint": rec["sampling_fingerprint"],
            }
        )
    schema = pa.schema(
        [
            (id_col, pa.int64()),
            ("prompt_hash", pa.string()),
            ("text", pa.string()),
            ("n_prompt_tokens", pa.int32()),
            ("n_output_tokens", pa.int32()),
            ("finish_reason", pa.string()),
            ("status", pa.string()),
            ("attempts", pa.int16()),
            ("model", pa.string()),
            ("sampling_fingerprint", pa.string()),
        ]
    )
    return pa.Table.from_pylist(rows, schema=schema)


def llm_cache(cfg: LLMConfig, root: Path = DATA_ROOT) -> LLMCache:
    return LLMCache(Path(cfg.cache_dir) if cfg.cache_dir else cache_dir("llm", root))


def generate_dataset(
    cfg: LLMConfig,
    domain: str,
    paths: DatasetPaths,
    backend: Backend | None = None,
    shard: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """Run the stage for one dataset; returns the summary also written to `llm/stats.json`.

    A caller may pass a running `backend` (e.g. to reuse one engine for several datasets); it stays open.
    `shard=(rank, world)` answers only that block of the uncached prompts and writes no outputs: it is how
    data-parallel workers split one run (see `ur4rec.llm.parallel`).
    """
    dataset, root = paths.name, paths.root
    users, items = read_prepared(paths)
    owned = backend is None
    backend = make_backend(cfg) if owned else backend.reconfigure(cfg)
    try:
        jobs = build_jobs(backend, cfg, domain, users, items)
        cache = llm_cache(cfg, root)
        if shard is not None:
            answer_missing(_block(jobs, cache, *shard), cache, backend, cfg, f"{dataset} [{shard[0]}/{shard[1]}]")
            return {}
        parallel = (0, 0.0)
        if cfg.data_parallel_size > 1 and any(j.key not in cache for j in jobs):
            from ur4rec.llm.parallel import run_workers

            parallel = run_workers(cfg, domain, dataset, root, cache)
        errors, stats = answer_missing(jobs, cache, backend, cfg, f"generate {dataset}")
        # Prompts the workers answered are hits by now; count them as generated by this run.
        stats.hits -= parallel[0]
        stats.generated += parallel[0]
        stats.seconds += parallel[1]
    finally:
        if owned:
            backend.close()
    summary = _summary(jobs, cache, errors, stats, backend, cfg)
    for kind, (_, filename) in OUTPUTS.items():
        write_parquet(paths.llm / filename, output_table(jobs, kind, cache, errors))
    write_json(paths.llm / "stats.json", summary)
    cache.log_lookups(dataset=dataset, prompts=stats.unique, hits=stats.hits, generated=stats.generated)
    return summary


def _block(jobs: list[Job], cache: LLMCache, rank: int, world: int) -> list[Job]:
    """Contiguous block `rank` of the uncached prompts in prompt order (blocks keep shared prefixes together)."""
    missing = sorted({j.key: j for j in jobs if j.key not in cache}.values(), key=lambda j: j.prompt)
    size = -(-len(missing) // world)
    return missing[rank * size : (rank + 1) * size]


def _summary(jobs, cache, errors, stats: RunStats, backend: Backend, cfg: LLMConfig) -> dict[str, Any]:
    statuses: dict[str, dict[str, int]] = {}
    for kind in OUTPUTS:
        counts = Counter((cache.get(j.key) or errors[j.key])["status"] for j in jobs if j.kind == kind)
        statuses[kind] = dict(sorted(counts.items()))
    return {
        "model": backend.model_identity,
        "backend": backend.name,
        "sampling": cfg.sampling.fingerprint(),
        "status": statuses,
        **stats.as_dict(),
    }
