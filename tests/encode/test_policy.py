"""Vector policy for failed/empty generations (pure functions)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ur4rec.encode.policy import BLANK, MISSING, apply_policy, classify

BAD = ["empty", "degenerate", "failed"]


def test_classify_marks_bad_statuses_missing_rows_and_blank_text():
    rows = {1: ("likes noir", "ok"), 2: ("cut off mid", "truncated"), 3: ("", "empty"), 4: ("aaaa aaaa", "degenerate"),
            5: ("   ", "ok"), 7: (None, "failed")}
    gens = classify([1, 2, 3, 4, 5, 6, 7], rows, BAD)
    assert gens.ids.tolist() == [1, 2, 3, 4, 5, 6, 7]
    assert gens.reasons == ["", "", "empty", "degenerate", BLANK, MISSING, "failed"]
    assert gens.texts == ["likes noir", "cut off mid", "", "", "", "", ""]  # bad texts are never encoded
    assert gens.bad.tolist() == [False, False, True, True, True, True, True]
    assert gens.counts() == {BLANK: 1, "degenerate": 1, "empty": 1, "failed": 1, MISSING: 1}


def test_truncated_can_be_declared_bad():
    gens = classify([1], {1: ("cut off", "truncated")}, [*BAD, "truncated"])
    assert gens.reasons == ["truncated"]


@pytest.fixture
def rows():
    vectors = torch.tensor([[1.0, 2.0], [9.0, 9.0], [3.0, 4.0]])
    bad = np.array([False, True, False])
    fallback = torch.tensor([[0.0, 0.0], [5.0, 6.0], [0.0, 0.0]])
    return vectors, bad, fallback


def test_zero_policy(rows):
    vectors, bad, _ = rows
    assert apply_policy(vectors, bad, "zero").tolist() == [[1, 2], [0, 0], [3, 4]]


def test_fallback_policy_takes_the_raw_text_vector_of_the_same_row(rows):
    vectors, bad, fallback = rows
    assert apply_policy(vectors, bad, "fallback_text", fallback).tolist() == [[1, 2], [5, 6], [3, 4]]
    with pytest.raises(ValueError, match="fallback"):
        apply_policy(vectors, bad, "fallback_text")


def test_mean_policy_uses_only_good_rows(rows):
    vectors, bad, _ = rows
    assert apply_policy(vectors, bad, "mean").tolist() == [[1, 2], [2, 3], [3, 4]]
    assert apply_policy(vectors, np.ones(3, bool), "mean").abs().sum() == 0


def test_policy_never_mutates_its_input(rows):
    vectors, bad, _ = rows
    before = vectors.clone()
    apply_policy(vectors, bad, "zero")
    assert torch.equal(vectors, before)
