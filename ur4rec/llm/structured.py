"""Structured generation (`llm.structured`): the model answers a JSON schema, the stage stores a readable text.

Left to write freely, a small model copies the prompt's list back or loops ("Comedy/Comedy/..."). Under a
grammar it has to fill named fields: category fields are enums of the dataset's own categories (read from
`items.parquet` at run time), free-text fields are bounded, so it can neither copy a list nor loop for long.

A schema file (YAML, one per kind and domain, beside the templates) holds:
- `instruction`: Jinja text that replaces the template's instruction (same variables);
- `schema`: a JSON schema in the subset `validate` checks. `enum: categories` (a string where a list is
  expected) becomes the dataset's categories; each property's `title` is its label in the stored text.

The stored text renders the JSON as `likes: Drama, Sci-Fi; dislikes: Comedy; themes: ...; summary: ...`
(empty fields left out, repeats dropped); the raw JSON is kept beside it. The cache key holds the final
schema, so another dataset's categories or an edited schema never reuse an answer.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections import Counter
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Iterable, Mapping

import jinja2

from ur4rec.llm.prompts import TemplateError, compile_text, read_yaml

CATEGORIES = "categories"  # the placeholder `enum: categories`
# The JSON schema keywords `validate` understands; a schema file using any other is refused at load,
# so what the grammar allows and what the stage accepts never drift apart.
KEYWORDS = {
    "type", "properties", "required", "additionalProperties", "items", "enum", "minItems", "maxItems",
    "uniqueItems", "minLength", "maxLength", "pattern", "title", "description",
}
# Compact JSON: no free whitespace between tokens. Small models otherwise pad with newlines until the
# token limit; the engines are started with this policy, and it is part of every structured cache key.
WHITESPACE = "compact"
_TYPES = {"object": dict, "array": list, "string": str, "integer": int, "number": (int, float), "boolean": bool}


class SchemaViolation(ValueError):
    """A generated JSON does not match the schema; the message says where."""


@dataclass(frozen=True)
class OutputSchema:
    """One kind's structured output for one dataset: the instruction and the final JSON schema."""

    path: Path
    instruction: jinja2.Template
    schema: Mapping[str, Any]

    @cached_property
    def grammar(self) -> str:
        """The schema the engine constrains decoding with, as canonical JSON.

        `uniqueItems` is left out: neither xgrammar nor llguidance implements it (vLLM rejects the schema),
        so uniqueness is enforced when rendering, by dropping repeats. Keys keep the file's order (not
        sorted): the grammar makes the model write the properties in that order.
        """
        return json.dumps(_without(self.schema, "uniqueItems"), ensure_ascii=False, separators=(",", ":"))

    @cached_property
    def fingerprint(self) -> str:
        """Short hash of what constrains the output; stored with every output, part of its cache key."""
        return hashlib.sha256(self.key_part.encode("utf-8")).hexdigest()[:16]

    @property
    def key_part(self) -> str:
        return f"json_schema|{WHITESPACE}|{self.grammar}"

    def parse(self, raw: str) -> dict[str, Any]:
        """The generated JSON as a dict; raises SchemaViolation when it does not parse or match."""
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise SchemaViolation(f"not JSON: {exc}") from None
        validate(value, self.schema)
        return value

    def render(self, value: Mapping[str, Any]) -> str:
        """`label: value; label: a, b` in the schema's property order (labels from `title`)."""
        parts = []
        for name, prop in self.schema["properties"].items():
            text = _field_text(value.get(name), prop, {name.lower(), str(prop.get("title", name)).lower()})
            if text:
                parts.append(f"{prop.get('title', name)}: {text}")
        return "; ".join(parts)


def _field_text(value: Any, prop: Mapping[str, Any], labels: set[str] = frozenset()) -> str:
    """A field's value as text. Lists lose repeats (`uniqueItems`, which no grammar backend enforces) and
    entries that only restate the field's label (a small model answers `themes: themes`)."""
    if isinstance(value, list):
        items = [" ".join(str(v).split()) for v in value]
        if prop.get("uniqueItems"):
            items = list(dict.fromkeys(items))
        return ", ".join(i for i in items if i and i.lower() not in labels)
    return " ".join(str(value).split()) if value is not None else ""


# ---------------------------------------------------------------- loading


def dataset_categories(categories: Iterable[Iterable[str] | None], limit: int, min_items: int) -> list[str]:
    """The enum for `categories`: those held by at least `min_items` items, most frequent first, at most `limit`.

    Rare categories (ml-100k's single `unknown`) are noise to the model and lengthen the grammar.
    """
    counts = Counter(c.strip() for cats in categories for c in (cats or []) if c and c.strip())
    ranked = sorted((c for c, n in counts.items() if n >= min_items), key=lambda c: (-counts[c], c))
    return ranked[:limit]


def load_schema(path: str | Path, categories: list[str]) -> OutputSchema:
    """Read a schema file and fill its `enum: categories` with the dataset's categories."""
    path = Path(path)
    data = read_yaml(path, "output schema")
    unknown = sorted(set(data) - {"instruction", "schema"})
    if unknown or not isinstance(data.get("instruction"), str) or not isinstance(data.get("schema"), dict):
        raise TemplateError(f"{path}: needs `instruction:` (text) and `schema:` (a JSON schema), nothing else")
    schema = data["schema"]
    if schema.get("type") != "object" or not isinstance(schema.get("properties"), dict):
        raise TemplateError(f"{path}: schema must be an object with `properties`")
    _check_keywords(schema, path, "schema")
    if not categories and _uses_categories(schema):
        raise TemplateError(f"{path}: uses `enum: categories` but the dataset has no categories; set llm.structured=false")
    return OutputSchema(path, compile_text(data["instruction"], path, "instruction"), _fill(schema, categories))


def _check_keywords(node: Any, path: Path, where: str) -> None:
    if not isinstance(node, dict):
        raise TemplateError(f"{path}: {where} must be a mapping")
    unsupported = sorted(set(node) - KEYWORDS)
    if unsupported:
        raise TemplateError(f"{path}: {where}: unsupported keyword(s) {unsupported}; supported: {sorted(KEYWORDS)}")
    if "type" in node and node["type"] not in _TYPES:
        raise TemplateError(f"{path}: {where}: type {node['type']!r} is not one of {sorted(_TYPES)}")
    for name, prop in (node.get("properties") or {}).items():
        _check_keywords(prop, path, f"{where}.{name}")
    if "items" in node:
        _check_keywords(node["items"], path, f"{where}.items")


def _uses_categories(node: Any) -> bool:
    if isinstance(node, dict):
        return node.get("enum") == CATEGORIES or any(_uses_categories(v) for v in node.values())
    return False


def _fill(node: Any, categories: list[str]) -> Any:
    if isinstance(node, dict):
        return {k: (list(categories) if k == "enum" and v == CATEGORIES else _fill(v, categories)) for k, v in node.items()}
    if isinstance(node, list):
        return [_fill(v, categories) for v in node]
    return node


def _without(node: Any, keyword: str) -> Any:
    if isinstance(node, dict):
        return {k: _without(v, keyword) for k, v in node.items() if k != keyword}
    if isinstance(node, list):
        return [_without(v, keyword) for v in node]
    return copy.deepcopy(node)


# ---------------------------------------------------------------- validation (the KEYWORDS subset)


def validate(value: Any, schema: Mapping[str, Any], where: str = "$") -> None:
    """Raise SchemaViolation at the first place `value` breaks `schema` (uniqueItems is not checked: see grammar)."""
    expected = schema.get("type")
    if expected is not None and (not isinstance(value, _TYPES[expected]) or (expected != "boolean" and isinstance(value, bool))):
        raise SchemaViolation(f"{where}: expected {expected}, got {type(value).__name__}")
    if "enum" in schema and value not in schema["enum"]:
        raise SchemaViolation(f"{where}: {value!r} is not one of the allowed values")
    if isinstance(value, dict):
        _validate_object(value, schema, where)
    elif isinstance(value, list):
        _validate_array(value, schema, where)
    elif isinstance(value, str):
        _validate_string(value, schema, where)


def _validate_object(value: dict, schema: Mapping[str, Any], where: str) -> None:
    props = schema.get("properties", {})
    missing = [k for k in schema.get("required", []) if k not in value]
    if missing:
        raise SchemaViolation(f"{where}: missing {missing}")
    extra = sorted(set(value) - set(props))
    if extra and schema.get("additionalProperties") is False:
        raise SchemaViolation(f"{where}: unexpected {extra}")
    for name, prop in props.items():
        if name in value:
            validate(value[name], prop, f"{where}.{name}")


def _validate_array(value: list, schema: Mapping[str, Any], where: str) -> None:
    if not schema.get("minItems", 0) <= len(value) <= schema.get("maxItems", len(value)):
        raise SchemaViolation(f"{where}: {len(value)} items, outside [{schema.get('minItems', 0)}, {schema.get('maxItems')}]")
    for i, item in enumerate(value):
        validate(item, schema.get("items", {}), f"{where}[{i}]")


def _validate_string(value: str, schema: Mapping[str, Any], where: str) -> None:
    if not schema.get("minLength", 0) <= len(value) <= schema.get("maxLength", len(value)):
        raise SchemaViolation(f"{where}: length {len(value)} outside [{schema.get('minLength', 0)}, {schema.get('maxLength')}]")
    if "pattern" in schema and re.search(schema["pattern"], value) is None:
        raise SchemaViolation(f"{where}: {value!r} does not match {schema['pattern']!r}")
