"""Answering the prompts the cache does not hold: generate, judge, retry, flush.

Misses are claimed a chunk at a time (`ur4rec.llm.claims`: generations sharing a cache folder split the work
instead of doubling it), generated sorted by prompt text (prompts sharing a prefix run together, so vLLM's
prefix cache hits), and finished outputs are flushed to the cache every `llm.flush_every` prompts: a killed run
loses at most that many, and the rerun starts where it stopped. Outputs whose status is in `llm.quality.retry_on`
are retried with a seed drawn from (`llm.sampling.seed`, attempt) (`attempt_seed`), up to `llm.quality.max_retries`
times; the final status is stored either way.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from ur4rec.llm.backends import Backend, Completion, Request
from ur4rec.llm.cache import LLMCache
from ur4rec.llm.claims import Claims, wait
from ur4rec.llm.config import LLMConfig, QualityConfig
from ur4rec.llm.jobs import Job
from ur4rec.llm.quality import assess
from ur4rec.llm.structured import SchemaViolation

log = logging.getLogger(__name__)

CLAIM_CHUNKS = 4  # a claim covers this many times max(llm.batch_size, llm.flush_every) prompts
CLAIM_POLL_S = 1.0  # how often a generation waiting on others' claims looks again


@dataclass
class RunStats:
    prompts: int = 0
    unique: int = 0
    hits: int = 0
    generated: int = 0
    retried: int = 0
    schema_violations: int = 0  # structured attempts whose JSON did not parse or match (retried ones too)
    output_tokens: int = 0
    seconds: float = 0.0
    statuses: Counter = field(default_factory=Counter)

    def add_remote(self, remote: RunStats, left_out: int, failed: int) -> None:
        """Count in what Ray engine actors answered before this in-process pass (`ur4rec.llm.cluster`).

        The pass found the actors' cached outputs as hits, and never saw the `left_out` prompts (`failed`
        distinct keys) whose engines refused them.
        """
        self.prompts += left_out
        self.unique += failed
        self.hits -= remote.generated - failed
        for name in ("generated", "retried", "schema_violations", "output_tokens", "seconds"):
            setattr(self, name, getattr(self, name) + getattr(remote, name))

    def absorb(self, other: RunStats) -> None:
        """Add the counts of another pass (a claimed chunk) over other prompts."""
        for name in ("generated", "retried", "schema_violations", "output_tokens", "seconds"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.statuses.update(other.statuses)

    def as_dict(self) -> dict[str, Any]:
        rate = self.output_tokens / self.seconds if self.seconds else 0.0
        return {
            "prompts": self.prompts,
            "unique_prompts": self.unique,
            "cache_hits": self.hits,
            "hit_rate": round(self.hits / self.unique, 4) if self.unique else 1.0,
            "generated": self.generated,
            "retried": self.retried,
            "schema_violations": self.schema_violations,
            "generated_output_tokens": self.output_tokens,
            "generation_seconds": round(self.seconds, 2),
            "output_tokens_per_s": round(rate, 2),
            "prompts_per_s": round(self.generated / self.seconds, 3) if self.seconds else 0.0,
        }


@dataclass(frozen=True)
class Verdict:
    text: str  # what is stored and encoded
    raw: str | None  # structured outputs: the JSON as generated
    status: str
    violation: str = ""  # structured outputs: why the JSON was refused


def judge(job: Job, completion: Completion, quality: QualityConfig) -> Verdict:
    """Stored text and status of one completion.

    A structured output that does not parse or match its schema is `degenerate` (unusable, retried, and
    replaced by the encoder like any loop); its raw text is kept so it can be inspected.
    """
    if completion.finish_reason == "error":
        return Verdict("", None, "failed")
    try:
        completion.text.encode("utf-8")
    except UnicodeEncodeError as exc:  # a lone surrogate from a server: no shard could store it
        return Verdict("", None, "failed", f"the answer is not valid Unicode ({exc.reason} at {exc.start})")
    if job.schema is None:
        text = completion.text.strip()
        return Verdict(text, None, assess(text, completion.finish_reason, quality))
    raw = completion.text.strip()
    try:
        text = job.schema.render(job.schema.parse(raw))
    except SchemaViolation as exc:
        return Verdict(raw, raw, "degenerate", str(exc))
    return Verdict(text, raw, assess(text, completion.finish_reason, quality))


def _record(job: Job, completion: Completion, verdict: Verdict, attempt: int, seed: int, backend: Backend,
            cfg: LLMConfig) -> dict[str, Any]:
    return {
        "key": job.key,
        "model": backend.model_identity,
        "sampling_fingerprint": cfg.sampling.fingerprint(),
        "prompt": job.prompt,
        "text": verdict.text,
        "raw": verdict.raw,
        "schema_fingerprint": job.schema.fingerprint if job.schema else None,
        "n_prompt_tokens": completion.n_prompt_tokens,
        "n_output_tokens": completion.n_output_tokens,
        "finish_reason": completion.finish_reason,
        "status": verdict.status,
        "attempts": attempt,
        "seed": seed,
        "created_at": time.time(),
    }


class CacheWriter:
    """Buffers finished outputs and writes them to the cache every `every` of them, as one shard each.

    `close` writes the remainder (also after an error, so a Ctrl-C or an engine crash loses nothing that
    finished), merges the shards written into one and returns it. With `keep`, the written records also stay
    in `kept` (a Ray engine actor sends them back to the driver; see `ur4rec.llm.cluster`).
    """

    def __init__(self, cache: LLMCache, every: int, keep: bool = False):
        self.cache, self.every, self.keep = cache, every, keep
        self.buffer: list[dict] = []
        self.written: list[Path] = []
        self.kept: list[dict] = []

    def add(self, record: dict) -> None:
        self.buffer.append(record)
        if self.keep:
            self.kept.append(record)
        if len(self.buffer) >= self.every:
            self._flush()

    def _flush(self) -> None:
        if self.buffer:
            self.written.append(self.cache.append(self.buffer))
            self.buffer = []

    def close(self) -> Path | None:
        """Flush, merge this writer's shards; the one shard now holding its records (None: it wrote none)."""
        self._flush()
        if len(self.written) > 1:
            merged = self.cache.compact(self.written)
            self.written = [merged] if merged else self.written
        return self.written[0] if self.written else None


def _request(job: Job, seed: int) -> Request:
    return Request(job.key, job.prompt, job.messages, seed, job.schema.grammar if job.schema else None)


def answer_missing(
    jobs: list[Job], cache: LLMCache, backend: Backend, cfg: LLMConfig, desc: str = "generate"
) -> tuple[dict[str, dict], RunStats]:
    """Generate every job whose key is not cached; returns the records that could not be cached (errors).

    The missing prompts are claimed a chunk at a time (`ur4rec.llm.claims`): a generation running at the same
    time on the same cache folder answers the others, and prompts answered meanwhile by others count as hits.
    """
    unique = {job.key: job for job in jobs}
    missing = sorted((j for j in unique.values() if j.cached(cache) is None), key=lambda j: j.prompt)
    if not missing:
        return {}, RunStats(prompts=len(jobs), unique=len(unique), hits=len(unique))
    chunk = CLAIM_CHUNKS * max(cfg.batch_size, cfg.flush_every)
    errors: dict[str, dict] = {}
    stats = RunStats()
    shards: list[Path] = []
    tried: set[str] = set()  # answered (or failed) here: never taken twice by this run
    waiting = False
    with Claims(cache.root) as claims:
        while True:
            with claims.exclusive():
                cache.refresh()  # what the others finished
                taken = claims.others()
                todo = [j for j in missing if j.key not in tried and j.cached(cache) is None]
                mine = [j for j in todo if j.key not in taken][:chunk]
                claims.claim([j.key for j in mine])
            if not mine:
                if not todo:
                    break
                if not waiting:
                    log.info("%s: waiting for %d prompt(s) another generation on this cache is answering", desc, len(todo))
                    waiting = True
                wait(CLAIM_POLL_S)
                continue
            waiting = False
            writer = CacheWriter(cache, cfg.flush_every)
            try:
                chunk_errors, chunk_stats = answer_jobs(mine, writer, backend, cfg, desc)
            finally:
                shards.extend(p for p in writer.written if p is not None)
                claims.release()  # after the writer's close: the answers are in the cache
            errors.update(chunk_errors)
            stats.absorb(chunk_stats)
            tried.update(j.key for j in mine)
    if len(shards) > 1:
        cache.compact(shards)  # one shard per run, as before claims
    stats.prompts, stats.unique, stats.hits = len(jobs), len(unique), len(unique) - stats.generated
    return errors, stats


def attempt_seed(seed: int, attempt: int) -> int:
    """The sampling seed of an attempt: the first is `seed` itself; a retry's is hashed from (seed, attempt), so
    generations with neighbouring seeds share no draw (with `seed + attempt`, seed k+1's first draw was seed k's
    first retry)."""
    if attempt == 0:
        return seed
    return int(np.random.SeedSequence([seed, attempt]).generate_state(1)[0] % (2**31 - 1))


def answer_jobs(
    jobs: list[Job], writer: CacheWriter, backend: Backend, cfg: LLMConfig, desc: str = "generate", progress: bool = True
) -> tuple[dict[str, dict], RunStats]:
    """Generate, judge and retry these jobs (distinct keys, none cached), in this order, into `writer`.

    Returns the records that could not be cached (status `failed`) and the run's counts; `writer` is closed
    on the way out, also after an error. The one place the statuses and retry rules are applied: the
    in-process run and every Ray engine actor come through here.
    """
    stats = RunStats(prompts=len(jobs), unique=len(jobs))
    errors: dict[str, dict] = {}
    by_key = {job.key: job for job in jobs}
    try:
        backend.start()  # before the clock: engine start-up is not generation speed
        started = time.perf_counter()
        bar = tqdm(total=len(jobs), desc=desc, unit="prompt", dynamic_ncols=True, mininterval=1.0, disable=not progress)
        try:
            pending, attempt = jobs, 0
            while pending:
                seed = attempt_seed(cfg.sampling.seed, attempt)
                retry = []
                for completion in backend.generate([_request(j, seed) for j in pending]):
                    job = by_key[completion.key]
                    stats.output_tokens += completion.n_output_tokens
                    verdict = judge(job, completion, cfg.quality)
                    if verdict.violation:
                        stats.schema_violations += 1
                        log.debug("%s %s: %s", job.kind, job.id, verdict.violation)
                    if verdict.status in cfg.quality.retry_on and attempt < cfg.quality.max_retries:
                        retry.append(job)
                        continue
                    record = _record(job, completion, verdict, attempt + 1, seed, backend, cfg)
                    stats.statuses[verdict.status] += 1
                    if verdict.status == "failed":
                        # Not cached: a server hiccup or a rejected prompt should be tried again next run.
                        errors[job.key] = record
                        log.warning("%s %s: %s", job.kind, job.id, completion.error or verdict.violation)
                    else:
                        writer.add(record)
                    bar.update(1)
                    bar.set_postfix_str(f"{stats.output_tokens / (time.perf_counter() - started):.1f} tok/s", refresh=False)
                stats.retried += len(retry)
                pending, attempt = retry, attempt + 1
        finally:
            bar.close()
    finally:
        writer.close()
    stats.seconds = time.perf_counter() - started
    stats.generated = len(jobs)
    return errors, stats
