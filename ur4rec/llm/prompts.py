"""Prompt templates f_u and f_i (paper §3.1): files with a system message, an instruction and a data block,
rendered with Jinja.

A template file is YAML with `system` (optional), `instruction` and `data` keys, each a Jinja template. The
user message is the instruction and the data block in the order `llm.prompt_order` asks for (`compose`):
instruction first gives every prompt of a kind one long shared prefix for vLLM's prefix cache; data first
puts the task last, where small instruct models follow it best (measured in docs/llm.md). Keeping the
data block separate also tells the echo measure (`ur4rec.llm.echo`) which text an output must not copy. Data from the
datasets (titles, categories, profile fields) only ever enters as template *variables*, never as template
source, and autoescaping is off: quotes, braces, `{{ }}`, `$name`, newlines and non-ASCII in a title come out
verbatim and cannot break or inject into the template. The rendered messages then go through the model's
own chat template (`ChatRenderer`), so the engine sees exactly the format the model was tuned on.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import jinja2
import jinja2.sandbox
import yaml

from ur4rec.errors import UserError

Messages = tuple[Mapping[str, str], ...]
PROMPT_ORDERS = ("instruction_first", "data_first")
TEMPLATE_KEYS = ("system", "instruction", "data")


class TemplateError(UserError, ValueError):
    """A template file is malformed or refers to a variable that is not provided; names the file."""


def _num(value: Any) -> str:
    """4.0 -> '4', 3.5 -> '3.5': ratings read naturally."""
    value = float(value)
    return str(int(value)) if value.is_integer() else f"{value:g}"


def _text(value: Any) -> str:
    """Lists become comma-separated text, everything else its str()."""
    if isinstance(value, (list, tuple)):
        return ", ".join(_text(v) for v in value)
    return str(value)


def _environment() -> jinja2.Environment:
    env = jinja2.sandbox.ImmutableSandboxedEnvironment(
        autoescape=False,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=False,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = _num
    env.filters["text"] = _text
    return env


@dataclass(frozen=True)
class PromptParts:
    """One rendered prompt before it is put in order: what the model is told and the data it works on."""

    system: str | None
    instruction: str
    data: str


def compose(parts: PromptParts, order: str) -> Messages:
    """The chat messages: the system message, then instruction and data in `order` as one user message."""
    if order not in PROMPT_ORDERS:
        raise TemplateError(f"llm.prompt_order: {order!r} is not one of {PROMPT_ORDERS}")
    blocks = (parts.instruction, parts.data) if order == "instruction_first" else (parts.data, parts.instruction)
    user = {"role": "user", "content": "\n\n".join(b for b in blocks if b)}
    return ({"role": "system", "content": parts.system}, user) if parts.system else (user,)


@dataclass(frozen=True)
class PromptTemplate:
    path: Path
    system: jinja2.Template | None
    instruction: jinja2.Template
    data: jinja2.Template

    def parts(self, instruction: jinja2.Template | None = None, **context: Any) -> PromptParts:
        """Render one user's or item's prompt; `instruction` replaces the file's own (structured outputs)."""
        try:
            return PromptParts(
                system=self.system.render(**context).strip() if self.system is not None else None,
                instruction=(instruction or self.instruction).render(**context).strip(),
                data=self.data.render(**context).strip(),
            )
        except jinja2.TemplateError as exc:
            raise TemplateError(f"{self.path}: cannot render: {exc}") from exc

    def messages(self, order: str = "instruction_first", **context: Any) -> Messages:
        return compose(self.parts(**context), order)


def compile_text(source: str, path: Path, key: str) -> jinja2.Template:
    """Compile one Jinja text of a template or schema file; syntax errors name the file and line."""
    try:
        return _environment().from_string(source)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(f"{path}: {key}: line {exc.lineno}: {exc.message}") from exc


def read_yaml(path: Path, what: str) -> dict[str, Any]:
    """A template or schema file as a mapping; a missing or malformed file is an error naming it."""
    if not path.is_file():
        raise TemplateError(f"{what} not found: {path} (see llm.templates / llm.schemas in params.yaml)")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise TemplateError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise TemplateError(f"{path}: must be a mapping")
    return data


def load_template(path: str | Path) -> PromptTemplate:
    """Read a template file (YAML with `system`, `instruction`, `data`), compiling each; errors name the file."""
    path = Path(path)
    data = read_yaml(path, "prompt template")
    unknown = sorted(set(data) - set(TEMPLATE_KEYS))
    if unknown:
        raise TemplateError(f"{path}: unknown key(s) {unknown}; a template has {list(TEMPLATE_KEYS)}")
    missing = [k for k in ("instruction", "data") if not isinstance(data.get(k), str)]
    if missing:
        raise TemplateError(f"{path}: needs `instruction:` and `data:` texts (missing {missing})")
    system = compile_text(data["system"], path, "system") if data.get("system") else None
    return PromptTemplate(path, system, compile_text(data["instruction"], path, "instruction"),
                          compile_text(data["data"], path, "data"))


# ---------------------------------------------------------------- template variables from prepared tables


def _present(value: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, float) and math.isnan(value):
        return False
    return not (isinstance(value, str) and not value.strip())


def one_line(value: Any) -> str:
    """Collapse newlines and runs of whitespace, so a title keeps one history entry on one line."""
    return " ".join(str(value).split())


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return one_line(value)
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def parse_attributes(raw: Any, item_id: int) -> dict[str, Any]:
    """The `attributes` JSON column of items.parquet as a dict; malformed JSON names the item."""
    if raw is None or raw == "":
        return {}
    if isinstance(raw, Mapping):
        return dict(raw)
    try:
        value = json.loads(raw)
    except (TypeError, json.JSONDecodeError) as exc:
        raise ValueError(f"items.parquet: item_id {item_id}: attributes is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise ValueError(f"items.parquet: item_id {item_id}: attributes must be a JSON object")
    return {one_line(k): _clean(v) for k, v in value.items() if _present(v) and v != []}


def item_context(item: Mapping[str, Any], domain: str) -> dict[str, Any]:
    """Variables for f_i: title, categories, attributes (year, brand, publisher, ... where known)."""
    return {
        "domain": domain,
        "title": one_line(item["title"]),
        "categories": [one_line(c) for c in (item.get("categories") or [])],
        "attributes": parse_attributes(item.get("attributes"), int(item["item_id"])),
    }


def user_context(
    user: Mapping[str, Any], items: Mapping[int, Mapping[str, Any]], domain: str
) -> dict[str, Any]:
    """Variables for f_u: the profile fields that are present, then the LLM history oldest -> newest.

    Only `llm_history` is used: prepare cuts it before the user's earliest target, so no target leaks.
    """
    history_ids = list(user.get("llm_history") or [])
    ratings = list(user.get("llm_history_ratings") or [None] * len(history_ids))
    if len(ratings) != len(history_ids):
        raise ValueError(
            f"users.parquet: user_id {user['user_id']}: llm_history has {len(history_ids)} items "
            f"but llm_history_ratings {len(ratings)}"
        )
    history = []
    for item_id, rating in zip(history_ids, ratings):
        item = items.get(int(item_id))
        if item is None:
            raise ValueError(f"users.parquet: user_id {user['user_id']}: history item {item_id} not in items.parquet")
        history.append(
            {
                "title": one_line(item["title"]),
                "categories": [one_line(c) for c in (item.get("categories") or [])],
                "rating": float(rating) if _present(rating) else None,
            }
        )
    profile = {k: one_line(user[k]) for k in ("gender", "age", "occupation") if _present(user.get(k))}
    return {"domain": domain, "profile": profile, "history": history}


# ---------------------------------------------------------------- chat formatting


class ChatRenderer:
    """Applies a model's chat template to messages, giving the exact prompt string the engine sees."""

    def __init__(self, tokenizer: Any, name: str = "model"):
        if not getattr(tokenizer, "chat_template", None):
            raise TemplateError(
                f"{name} has no chat template; use a chat/instruct model (e.g. SmolLM2-Instruct, Llama-2-chat)"
            )
        self.tokenizer = tokenizer

    def render(self, messages: Sequence[Mapping[str, str]]) -> str:
        msgs = [dict(m) for m in messages]
        try:
            return self.tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
        except Exception as exc:  # noqa: BLE001 - templates raise their own exception types
            # Some chat templates refuse a system role; fold it into the user turn instead.
            if msgs and msgs[0]["role"] == "system" and len(msgs) > 1 and "system" in str(exc).lower():
                merged = [{"role": "user", "content": msgs[0]["content"] + "\n\n" + msgs[1]["content"]}, *msgs[2:]]
                return self.tokenizer.apply_chat_template(merged, tokenize=False, add_generation_prompt=True)
            raise


def messages_as_text(messages: Iterable[Mapping[str, str]]) -> str:
    """Canonical text of messages for servers that apply the chat template themselves (cache identity)."""
    return "chat:" + json.dumps([dict(m) for m in messages], ensure_ascii=False, sort_keys=True)
