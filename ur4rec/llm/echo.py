"""How much of an output is its prompt's data handed back: the echo measure.

A small model asked to summarise a list often copies the list instead. Two numbers per output catch that:

- `echo_share`: the share of the output's word n-grams (n = 4) that occur in the prompt's data block (the
  history list, the item's fields; not the instruction). A summary in the model's own words scores near 0,
  a copied list near 1.
- `titles_repeated`: how many of the listed titles appear in the output word for word. A title also counts
  without its trailing year and with a catalogue-style trailing article put back in front ("Wedding Singer,
  The (1998)" is found as "the wedding singer"), as long as at least two words remain, so that a one-word
  title ("Heat") only counts together with its year.

Words are lower-cased runs of letters and digits, so punctuation, quotes and line breaks do not hide a copy.
Pure functions of text: the generate stage stores them per output and the report can recompute them.
"""

from __future__ import annotations

import re
import statistics
from typing import Iterable, Mapping, Sequence

ECHO_NGRAM = 4
_WORD = re.compile(r"\w+")
_YEAR = re.compile(r"\s*\(\d{4}\)\s*$")
_ARTICLE = re.compile(r"^(.*),\s*(the|a|an)$", re.IGNORECASE)


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def ngrams(tokens: Sequence[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def echo_share(output: str, source: str, n: int = ECHO_NGRAM) -> float:
    """Share of the output's word n-grams found in `source`; 0.0 when the output has fewer than n words."""
    grams = ngrams(words(output), n)
    if not grams:
        return 0.0
    seen = set(ngrams(words(source), n))
    return sum(g in seen for g in grams) / len(grams)


def title_variants(title: str) -> set[str]:
    """The word sequences that count as repeating `title` (see the module docstring)."""
    full = " ".join(words(title))
    variants = {full} if full else set()
    bare = _YEAR.sub("", title).strip()
    inverted = _ARTICLE.match(bare)
    for form in (bare, f"{inverted.group(2)} {inverted.group(1)}" if inverted else ""):
        key = words(form)
        if len(key) >= 2:
            variants.add(" ".join(key))
    return variants


def titles_repeated(output: str, titles: Iterable[str]) -> int:
    """Number of distinct titles that appear in the output as one contiguous run of words."""
    # Padding with spaces makes the match whole-word: "heat 1995" does not match inside "wheat 1995".
    text = f" {' '.join(words(output))} "
    found = set()
    for title in titles:
        if any(f" {v} " in text for v in title_variants(title)):
            found.add(" ".join(words(title)))
    return len(found)


def echo_summary(rows: Sequence[Mapping[str, object]]) -> dict[str, float | int]:
    """Aggregate of one kind's outputs: n, median/mean echo share, share truncated, mean titles repeated.

    `rows` carry `echo_share`, `titles_repeated` and `finish_reason`; truncated means the output hit the
    token limit (`finish_reason == "length"`), whatever its status.
    """
    if not rows:
        return {"n": 0}
    shares = [float(r["echo_share"]) for r in rows]
    return {
        "n": len(rows),
        "echo_share_median": round(statistics.median(shares), 4),
        "echo_share_mean": round(statistics.fmean(shares), 4),
        "share_truncated": round(sum(r["finish_reason"] == "length" for r in rows) / len(rows), 4),
        "titles_repeated_mean": round(statistics.fmean(float(r["titles_repeated"]) for r in rows), 4),
    }
