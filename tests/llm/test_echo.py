"""The echo measure: share of an output's word 4-grams copied from its prompt's data, and titles repeated."""

from __future__ import annotations

import pytest

from ur4rec.llm.echo import echo_share, echo_summary, titles_repeated

DATA = ('Movies watched:\n1. "Mother (1996)" (Comedy), rated 5/5\n2. "Cop Land (1997)" (Crime, Drama, Mystery), '
        'rated 4/5\n3. "Conspiracy Theory (1997)" (Action, Mystery, Romance, Thriller), rated 5/5')
TITLES = ["Mother (1996)", "Cop Land (1997)", "Conspiracy Theory (1997)"]


def test_a_copied_list_scores_one_and_a_summary_in_own_words_zero():
    copied = 'Movies watched: 1. "Mother (1996)" (Comedy), rated 5/5 2. "Cop Land (1997)"'
    assert echo_share(copied, DATA) == 1.0
    own = "This viewer enjoys tense crime stories and light comedies, and rates thrillers highly."
    assert echo_share(own, DATA) == 0.0


def test_the_share_counts_copied_ngrams_among_all():
    # 8 words -> 5 four-grams; "cop land 1997 crime" and "land 1997 crime drama" are in the data.
    text = "Cop Land (1997) (Crime, Drama) was great fun"
    assert echo_share(text, DATA) == pytest.approx(2 / 5)


def test_punctuation_case_and_line_breaks_do_not_hide_a_copy():
    assert echo_share('MOTHER 1996 -- comedy;\n"rated" 5 / 5', DATA) == 1.0


def test_outputs_shorter_than_one_ngram_score_zero():
    assert echo_share("Drama fan", DATA) == 0.0
    assert echo_share("", DATA) == 0.0


def test_titles_repeated_counts_distinct_whole_titles():
    text = 'Liked "Mother (1996)" and Mother (1996) again, also cop land 1997; no conspiracy.'
    assert titles_repeated(text, TITLES) == 2
    assert titles_repeated("Smother 1996 and Cop Landing 1997", TITLES) == 0  # whole words only
    assert titles_repeated("anything", []) == 0


def test_a_title_counts_without_its_year_and_with_its_article_in_front():
    titles = ["Wedding Singer, The (1998)", "Men in Black (1997)", "Heat (1995)"]
    assert titles_repeated("loved the wedding singer and men in black", titles) == 2
    assert titles_repeated("Wedding Singer, The", titles) == 1
    # A one-word title needs its year: "heat" alone is an ordinary word.
    assert titles_repeated("the heat of the moment", titles) == 0
    assert titles_repeated("Heat (1995) is tense", titles) == 1


def test_summary_per_kind():
    rows = [
        {"echo_share": 0.0, "titles_repeated": 0, "finish_reason": "stop"},
        {"echo_share": 0.5, "titles_repeated": 2, "finish_reason": "length"},
        {"echo_share": 1.0, "titles_repeated": 4, "finish_reason": "length"},
    ]
    assert echo_summary(rows) == {"n": 3, "echo_share_median": 0.5, "echo_share_mean": 0.5,
                                  "share_truncated": 0.6667, "titles_repeated_mean": 2.0}
    assert echo_summary([]) == {"n": 0}
