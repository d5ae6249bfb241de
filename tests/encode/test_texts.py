"""Raw texts for the +BERT baseline: item = title + categories; user = the LLM-visible history only."""

from __future__ import annotations

import pytest

from ur4rec.encode.texts import TextInputError, item_text, item_texts, user_texts


def test_item_text_renders_title_and_categories():
    assert item_text("Heat (1995)", ["Action", "Crime"]) == "Heat (1995). Categories: Action, Crime."
    assert item_text("Heat (1995)", []) == "Heat (1995)"
    assert item_text(None, ["Drama"]) == "Categories: Drama."
    assert item_text("  ", None) == ""
    assert item_text('The "Great" Escape', [" War ", ""]) == 'The "Great" Escape. Categories: War.'


def test_user_text_is_the_llm_history_newest_first_and_nothing_else():
    titles = ["Heat", "Fargo", "Amélie", "Target Movie"]
    items = item_texts([1, 2, 3, 4], titles, [["Crime"], [], ["Comedy"], ["Drama"]])
    users = user_texts([10, 11, 12], [[1, 2, 3], [], None], items)
    assert users[10] == "Amélie. Categories: Comedy. Fargo Heat. Categories: Crime."
    assert "Target Movie" not in users[10]  # only items the LLM saw; the user's later items never leak in
    assert users[11] == "" and users[12] == ""


def test_history_item_missing_from_items_names_user_and_item():
    with pytest.raises(TextInputError, match="users.parquet: user 5 .* item 99"):
        user_texts([5], [[1, 99]], {1: "Heat"}, source="users.parquet")
