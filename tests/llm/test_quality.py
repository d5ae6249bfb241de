"""Output quality checks: empty, truncated and looping texts get the right status."""

from __future__ import annotations

import pytest

from ur4rec.llm.config import QualityConfig
from ur4rec.llm.quality import assess, distinct_ngram_ratio, has_tail_loop

CFG = QualityConfig()
PROSE = (
    "This user enjoys character-driven dramas from the nineties, especially crime stories with morally "
    "complex leads, and rates light comedies lower. They favour acclaimed directors, strong ensemble casts "
    "and slower, atmospheric pacing over spectacle."
)


@pytest.mark.parametrize(
    "text, finish, status",
    [
        ("", "stop", "empty"),
        ("   \n\t ", "stop", "empty"),
        ("Ok.", "stop", "empty"),  # below min_chars
        (PROSE, "stop", "ok"),
        (PROSE, "length", "truncated"),
        ("I like movies. " * 30, "stop", "degenerate"),
        (PROSE + " the the the the the the the the the the the", "length", "degenerate"),
        (PROSE + "!" * 40, "stop", "degenerate"),
        ("好" * 50, "length", "degenerate"),  # no spaces: caught by the tail loop, not by word n-grams
    ],
)
def test_status(text, finish, status):
    assert assess(text, finish, CFG) == status


def test_distinct_ngram_ratio_bounds():
    assert distinct_ngram_ratio("a b c d e f".split(), 2) == 1.0
    assert distinct_ngram_ratio(["x"] * 10, 2) == pytest.approx(1 / 9)
    assert distinct_ngram_ratio(["x"], 4) == 1.0  # too short to judge


def test_tail_loop_needs_enough_repeats_and_span():
    assert not has_tail_loop("Rated 5/5 by many.")
    assert not has_tail_loop("ha ha ha")  # repeats, but too short to be a loop
    assert has_tail_loop("start " + "abc " * 12)


def test_thresholds_are_params():
    strict = QualityConfig(min_distinct_ngram_ratio=0.99, min_words_for_ngram_check=5)
    text = "good film good film good film good film"
    assert assess(text, "stop", strict) == "degenerate"
    assert assess(text, "stop", QualityConfig(min_words_for_ngram_check=100)) == "ok"
