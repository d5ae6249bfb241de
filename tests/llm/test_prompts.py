"""Prompt templates f_u / f_i: robust to any title, faithful to the prepared history, chat-formatted."""

from __future__ import annotations

import copy
import os

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from transformers import AutoTokenizer

from tests.conftest import REPO_ROOT
from ur4rec.llm.prompts import (
    ChatRenderer, TemplateError, item_context, load_template, one_line, parse_attributes, user_context,
)

INSTRUCTION = "Write one concise paragraph"

TEMPLATES = REPO_ROOT / "templates"
DOMAINS = ("movie", "game", "book", "product")
AWKWARD = [
    'The "Great" Escape', "Schindler's List", "{Braces} & {{ jinja }} {% if %}", "$HOME and ${var} %s {0}",
    "Amélie / 千と千尋の神隠し / Ωmega ✓", "line one\nline two\r\n\ttabbed", "back\\slash </s> <|im_end|>",
]


@pytest.fixture(scope="module")
def user_tpl():
    return load_template(TEMPLATES / "user_preference.yaml")


@pytest.fixture(scope="module")
def tokenizer(smollm2_dir):
    return AutoTokenizer.from_pretrained(smollm2_dir)


def items_by_id(titles):
    return {i + 1: {"item_id": i + 1, "title": t, "categories": ["Drama", "Crime"]} for i, t in enumerate(titles)}


def a_user(history, ratings=None, **profile):
    return {"user_id": 7, "gender": None, "age": None, "occupation": None, **profile,
            "llm_history": history, "llm_history_ratings": ratings if ratings is not None else [None] * len(history)}


@pytest.mark.parametrize("title", AWKWARD)
@pytest.mark.parametrize("domain", DOMAINS)
def test_awkward_titles_come_out_verbatim(user_tpl, domain, title):
    item = {"item_id": 1, "title": title, "categories": ["A{b}"], "attributes": '{"brand": "B\\"r{and}"}'}
    (_, item_msg) = load_template(TEMPLATES / f"item_{domain}.yaml").messages(**item_context(item, domain))
    assert f'"{one_line(title)}"' in item_msg["content"]
    (_, user_msg) = user_tpl.messages(**user_context(a_user([1]), items_by_id([title]), domain))
    assert f'1. "{one_line(title)}" (Drama, Crime)' in user_msg["content"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(title=st.text(min_size=1, max_size=40), category=st.text(max_size=15))
def test_any_text_renders_verbatim(user_tpl, title, category):
    items = {1: {"item_id": 1, "title": title, "categories": [category]}}
    (_, msg) = user_tpl.messages(**user_context(a_user([1]), items, "movie"))
    assert f'1. "{one_line(title)}"' in msg["content"]
    assert one_line(category) in msg["content"]


def test_history_is_listed_oldest_first_with_known_ratings(user_tpl):
    items = items_by_id(["Alpha", "Beta", "Gamma"])
    (_, msg) = user_tpl.messages(**user_context(a_user([3, 1, 2], [5.0, None, 3.5]), items, "movie"))
    text = msg["content"]
    assert text.index('1. "Gamma"') < text.index('2. "Alpha"') < text.index('3. "Beta"')
    assert '"Gamma" (Drama, Crime), rated 5/5' in text
    assert '"Alpha" (Drama, Crime)\n' in text  # unknown rating: nothing invented
    assert "rated 3.5/5" in text


def test_profile_shows_only_present_fields(user_tpl):
    items = items_by_id(["Alpha"])
    full = user_tpl.messages(**user_context(a_user([1], gender="F", age="25", occupation="writer"), items, "movie"))
    assert "User profile: female, age 25, writer." in full[1]["content"]
    part = user_tpl.messages(**user_context(a_user([1], occupation="writer"), items, "movie"))
    assert "User profile: writer." in part[1]["content"]
    none = user_tpl.messages(**user_context(a_user([1]), items, "movie"))
    assert "User profile" not in none[1]["content"]


def test_instruction_first_so_prompts_share_a_prefix(user_tpl, tokenizer):
    renderer = ChatRenderer(tokenizer)
    items = items_by_id(["Alpha", "Beta"])
    a = renderer.render(user_tpl.messages(**user_context(a_user([1], gender="M"), items, "game")))
    b = renderer.render(user_tpl.messages(**user_context(a_user([2], age="40"), items, "game")))
    shared = os.path.commonprefix([a, b])
    assert INSTRUCTION in shared and "Alpha" not in shared


@pytest.mark.parametrize("domain", DOMAINS)
def test_data_first_puts_the_instruction_last(user_tpl, domain):
    items = items_by_id(["Alpha"])
    context = user_context(a_user([1], gender="F"), items, domain)
    (system, msg) = user_tpl.messages("data_first", **context)
    assert msg["content"].startswith("User profile: female.") and msg["content"].endswith("do not repeat the list.")
    parts = user_tpl.parts(**context)
    assert msg["content"] == parts.data + "\n\n" + parts.instruction
    assert user_tpl.messages("instruction_first", **context)[1]["content"] == parts.instruction + "\n\n" + parts.data
    assert system == user_tpl.messages("instruction_first", **context)[0]
    item_tpl = load_template(TEMPLATES / f"item_{domain}.yaml")
    (_, item_msg) = item_tpl.messages("data_first", **item_context({"item_id": 1, "title": "Alpha"}, domain))
    assert item_msg["content"].endswith(INSTRUCTION + ".") and '"Alpha"' in item_msg["content"].split("\n")[0]


def test_an_unknown_prompt_order_is_refused(user_tpl):
    with pytest.raises(TemplateError, match="llm.prompt_order"):
        user_tpl.messages("random", **user_context(a_user([1]), items_by_id(["Alpha"]), "movie"))


def test_prompts_list_exactly_the_prepared_llm_history(prepared, user_tpl):
    """Nothing but `llm_history` reaches f_u: the prepare stage already cut it before the first target."""
    users = pl.read_parquet(prepared.prepared / "users.parquet").to_dicts()
    items = {r["item_id"]: r for r in pl.read_parquet(prepared.prepared / "items.parquet").to_dicts()}
    assert sum(bool(u["llm_history"]) for u in users) > len(users) // 2
    for user in users:
        (_, msg) = user_tpl.messages(**user_context(user, items, "movie"))
        listed = [line for line in msg["content"].splitlines() if line[:1].isdigit()]
        expected = [f'{k + 1}. "{one_line(items[i]["title"])}"' for k, i in enumerate(user["llm_history"])]
        assert len(listed) == len(expected)
        assert all(line.startswith(want) for line, want in zip(listed, expected)), (listed, expected)


def test_chat_template_of_the_model_is_applied(user_tpl, tokenizer):
    msgs = user_tpl.messages(**user_context(a_user([1]), items_by_id(["Alpha"]), "book"))
    prompt = ChatRenderer(tokenizer).render(msgs)
    assert prompt.startswith("<|im_start|>system\nYou are a recommendation expert")
    assert "<|im_start|>user\nYour task is to summarise" in prompt  # instruction_first, the default order
    assert prompt.endswith("<|im_start|>assistant\n")


def test_system_role_is_folded_in_when_the_chat_template_refuses_it(tokenizer):
    strict = copy.deepcopy(tokenizer)
    strict.chat_template = (
        "{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
        "{% endif %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}[assistant]"
    )
    out = ChatRenderer(strict).render([{"role": "system", "content": "S"}, {"role": "user", "content": "U"}])
    assert out == "[user] S\n\nU\n[assistant]"


def test_model_without_chat_template_is_refused(tokenizer):
    bare = copy.deepcopy(tokenizer)
    bare.chat_template = None
    with pytest.raises(TemplateError, match="no chat template"):
        ChatRenderer(bare, "base-model")


@pytest.mark.parametrize(
    "content, match",
    [
        ("data: [unclosed", "not valid YAML"),
        ("system: hi\ndata: x\n", "needs `instruction:` and `data:`"),
        ("user: hi\n", "unknown key.*'user'"),
        ("instruction: hi\ndata: x\nextra: x\n", "unknown key"),
        ("instruction: hi\ndata: |\n  ok\n  {% for x in %}\n", "data: line 2"),
    ],
)
def test_bad_template_files_name_the_file(tmp_path, content, match):
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    with pytest.raises(TemplateError, match=f"bad.yaml.*{match}|{match}"):
        load_template(path)


def test_unknown_variable_names_the_template(tmp_path):
    path = tmp_path / "typo.yaml"
    path.write_text("instruction: Describe it.\ndata: 'Movie {{ titel }}'\n")
    with pytest.raises(TemplateError, match="typo.yaml.*titel"):
        load_template(path).messages(title="x")


def test_missing_template_file_points_at_params(tmp_path):
    with pytest.raises(TemplateError, match="llm.templates"):
        load_template(tmp_path / "nope.yaml")


def test_bad_attributes_json_names_the_item():
    with pytest.raises(ValueError, match="item_id 42"):
        parse_attributes("{not json", 42)
    assert parse_attributes('{"year": 1995, "empty": "", "none": null, "list": []}', 1) == {"year": 1995}


def test_history_item_missing_from_items_names_the_user(user_tpl):
    with pytest.raises(ValueError, match="user_id 7.*item 99"):
        user_context(a_user([99]), items_by_id(["Alpha"]), "movie")


def test_game_ratings_read_as_recommendations(user_tpl):
    items = items_by_id(["Half-Life", "Portal"])
    (_, msg) = user_tpl.messages(**user_context(a_user([1, 2], [1.0, 0.0]), items, "game"))
    assert '"Half-Life" (Drama, Crime), recommended' in msg["content"]
    assert '"Portal" (Drama, Crime), not recommended' in msg["content"]
