"""Structured outputs: schema files, the dataset's category enum, validation, rendering, fingerprints."""

from __future__ import annotations

import json

import pytest

from tests.conftest import REPO_ROOT
from ur4rec.llm.prompts import TemplateError
from ur4rec.llm.structured import SchemaViolation, dataset_categories, load_schema, validate

DOMAINS = ("movie", "game", "book", "product")
GENRES = ["Drama", "Comedy", "Sci-Fi"]


def schema_file(tmp_path, body: str, name: str = "s.schema.yaml"):
    path = tmp_path / name
    path.write_text("instruction: Answer as JSON about {{ title }}.\nschema:\n" + body)
    return path


SMALL = """
  type: object
  properties:
    liked: {title: likes, type: array, items: {enum: categories}, minItems: 1, maxItems: 2, uniqueItems: true}
    note: {title: note, type: string, maxLength: 20}
  required: [liked, note]
  additionalProperties: false
"""


def test_dataset_categories_are_the_frequent_ones_most_frequent_first():
    cats = [["Drama", "Comedy"], ["Drama"], ["Comedy", "Drama"], ["unknown"], ["War", " "], ["War"], None]
    assert dataset_categories(cats, limit=10, min_items=2) == ["Drama", "Comedy", "War"]
    assert dataset_categories(cats, limit=2, min_items=1) == ["Drama", "Comedy"]


def test_enum_placeholder_becomes_the_categories_and_the_grammar_drops_unique_items(tmp_path):
    schema = load_schema(schema_file(tmp_path, SMALL), GENRES)
    assert schema.schema["properties"]["liked"]["items"] == {"enum": GENRES}
    grammar = json.loads(schema.grammar)
    assert "uniqueItems" not in json.dumps(grammar) and grammar["properties"]["liked"]["maxItems"] == 2
    assert list(grammar["properties"]) == ["liked", "note"]  # the file's order, which the model writes in
    assert schema.instruction.render(title="X") == "Answer as JSON about X."


def test_fingerprint_follows_the_final_schema(tmp_path):
    a = load_schema(schema_file(tmp_path, SMALL), GENRES)
    assert a.fingerprint == load_schema(schema_file(tmp_path, SMALL), GENRES).fingerprint
    assert a.fingerprint != load_schema(schema_file(tmp_path, SMALL), GENRES[:2]).fingerprint
    longer = load_schema(schema_file(tmp_path, SMALL.replace("maxLength: 20", "maxLength: 30")), GENRES)
    assert a.fingerprint != longer.fingerprint


@pytest.mark.parametrize(
    "raw, problem",
    [
        ('{"liked": ["Drama"], "note": "ok"', "not JSON"),
        ('{"liked": ["Western"], "note": "ok"}', "not one of the allowed"),
        ('{"liked": [], "note": "ok"}', "0 items"),
        ('{"liked": ["Drama", "Comedy", "Sci-Fi"], "note": "ok"}', "3 items"),
        ('{"liked": ["Drama"]}', "missing"),
        ('{"liked": ["Drama"], "note": "ok", "extra": 1}', "unexpected"),
        ('{"liked": ["Drama"], "note": "' + "x" * 21 + '"}', "length 21"),
        ('{"liked": "Drama", "note": "ok"}', "expected array"),
    ],
)
def test_answers_that_break_the_schema_are_refused_with_the_reason(tmp_path, raw, problem):
    schema = load_schema(schema_file(tmp_path, SMALL), GENRES)
    with pytest.raises(SchemaViolation, match=problem):
        schema.parse(raw)


def test_rendering_is_readable_drops_repeats_and_empty_fields(tmp_path):
    schema = load_schema(schema_file(tmp_path, SMALL), GENRES)
    assert schema.render(schema.parse('{"liked": ["Sci-Fi", "Sci-Fi"], "note": " two\\n lines "}')) == \
        "likes: Sci-Fi; note: two lines"
    assert schema.render({"liked": ["Drama"], "note": ""}) == "likes: Drama"
    assert schema.render({"liked": ["Likes", "Drama", "liked"], "note": "ok"}) == "likes: Drama; note: ok"  # a label is no value


def test_patterns_are_checked():
    prop = {"type": "string", "pattern": "^[a-z][a-z -]{2,20}$"}
    validate("space travel", prop)
    with pytest.raises(SchemaViolation, match="does not match"):
        validate("Drama, Drama", prop)


@pytest.mark.parametrize(
    "body, match",
    [
        (SMALL.replace("maxLength: 20", "format: email"), "unsupported keyword.*format"),
        (SMALL.replace("type: string", "type: text"), "type 'text'"),
        ("  type: array\n", "must be an object"),
    ],
)
def test_schema_files_outside_the_supported_subset_are_refused(tmp_path, body, match):
    with pytest.raises(TemplateError, match=f"s.schema.yaml.*{match}"):
        load_schema(schema_file(tmp_path, body), GENRES)


def test_a_dataset_without_categories_cannot_fill_the_enum(tmp_path):
    with pytest.raises(TemplateError, match="no categories.*llm.structured=false"):
        load_schema(schema_file(tmp_path, SMALL), [])


@pytest.mark.parametrize("kind", ["user", "item"])
@pytest.mark.parametrize("domain", DOMAINS)
def test_shipped_schema_files_load_and_bound_every_field(kind, domain):
    schema = load_schema(REPO_ROOT / f"templates/{kind}_{domain}.schema.yaml", GENRES)
    props = schema.schema["properties"]
    assert set(schema.schema["required"]) == set(props) and schema.schema["additionalProperties"] is False
    assert any(p.get("items", {}).get("enum") == GENRES for p in props.values())
    for name, prop in props.items():
        # Every field is bounded: an enum, an array with maxItems of bounded items, or a bounded string.
        bounded = "enum" in prop or "maxItems" in prop or "maxLength" in prop or "}$" in prop.get("pattern", "")
        assert bounded, f"{kind}_{domain}: {name} is unbounded"
    assert "{{" not in schema.instruction.render(title="T", domain=domain)
