"""The prompts of one dataset: f_u for every prepared user, f_i for every item, each keyed for the cache.

A job remembers, besides its prompt, the data block the prompt was built from and the titles it lists, so
the echo measure can tell what an output copied; and, with `llm.structured`, the schema it must answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import polars as pl

from ur4rec.config import ParamsError
from ur4rec.llm.backends import Backend
from ur4rec.llm.cache import LLMCache, cache_key
from ur4rec.llm.config import LLMConfig
from ur4rec.llm.prompts import Messages, PromptTemplate, compose, item_context, load_template, user_context
from ur4rec.llm.structured import OutputSchema, dataset_categories, load_schema
from ur4rec.paths import DatasetPaths

KINDS = ("user", "item")
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
    data: str  # the prompt's data block: what the output should not copy
    titles: tuple[str, ...]  # titles the prompt lists
    schema: OutputSchema | None = None  # set when the output must follow a JSON schema
    model: str = ""  # the model identity and sampling fingerprint the key was made of: a cached row must match
    sampling: str = ""

    def cached(self, cache: LLMCache) -> dict[str, Any] | None:
        """This job's answer in the cache: a row whose key, model, sampling, prompt and schema all match."""
        return cache.find(self.key, self.model, self.sampling, self.prompt, self.schema.fingerprint if self.schema else None)


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


def _per_domain(files: dict[str, str], domain: str, what: str, key: str) -> str:
    if domain not in files:
        raise ParamsError(f"no {what} for domain {domain!r}; add it to {key}")
    return files[domain]


def load_schemas(cfg: LLMConfig, domain: str, items: list[dict]) -> dict[str, OutputSchema | None]:
    """Each kind's output schema with this dataset's categories (None for free text)."""
    if not cfg.structured:
        return dict.fromkeys(KINDS)
    s = cfg.schemas
    categories = dataset_categories((i.get("categories") for i in items), s.max_categories, s.min_category_items)
    return {
        "user": load_schema(_per_domain(s.user, domain, "user schema", "llm.schemas.user"), categories),
        "item": load_schema(_per_domain(s.item, domain, "item schema", "llm.schemas.item"), categories),
    }


def build_jobs(backend: Backend, cfg: LLMConfig, domain: str, users: list[dict], items: list[dict]) -> list[Job]:
    """Render f_u for every user and f_i for every item into prompts keyed for the cache."""
    templates = {
        "user": load_template(cfg.templates.user),
        "item": load_template(_per_domain(cfg.templates.item, domain, "item template", "llm.templates.item")),
    }
    schemas = load_schemas(cfg, domain, items)
    by_id = {int(item["item_id"]): item for item in items}
    fingerprint = cfg.sampling.fingerprint()

    def job(kind: str, id_: int, context: dict[str, Any], titles: list[str]) -> Job:
        schema = schemas[kind]
        parts = _parts(templates[kind], schema, context)
        messages = compose(parts, cfg.prompt_order)
        prompt = backend.render(messages)
        key = cache_key(backend.model_identity, fingerprint, prompt, schema.key_part if schema else "")
        return Job(kind, id_, messages, prompt, key, parts.data, tuple(titles), schema, backend.model_identity, fingerprint)

    jobs = []
    for user in users:
        context = user_context(user, by_id, domain)
        jobs.append(job("user", int(user["user_id"]), context, [h["title"] for h in context["history"]]))
    for item in items:
        context = item_context(item, domain)
        jobs.append(job("item", int(item["item_id"]), context, [context["title"]]))
    return jobs


def _parts(template: PromptTemplate, schema: OutputSchema | None, context: dict[str, Any]):
    return template.parts(instruction=schema.instruction if schema else None, **context)

