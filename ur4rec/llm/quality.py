"""Is a generated text usable? Small models (and large ones at some seeds) return nothing, stop mid-sentence
at the token limit, or fall into a loop repeating one phrase. Each output gets a status that is stored with
it, so the encoder and the report can see (and count) what they are working with.

Statuses, most severe first: `empty` (nothing usable), `degenerate` (repetition loop), `truncated` (hit the
token limit), `ok`. `failed` (the engine or server returned an error) is assigned by the caller, and so is
`degenerate` for a structured answer whose JSON does not parse or match its schema (`ur4rec.llm.answer`).
"""

from __future__ import annotations

from ur4rec.llm.config import QualityConfig


def distinct_ngram_ratio(words: list[str], n: int) -> float:
    """Distinct word n-grams over all n-grams: near 1 for prose, low when phrases repeat."""
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 1.0


def has_tail_loop(text: str, min_repeats: int = 4, max_period: int = 64, min_span: int = 32) -> bool:
    """True when the text ends in one unit repeated back to back (e.g. '!!!!!...' or 'abc abc abc abc').

    Catches loops the word n-gram check misses: no spaces (CJK, symbols) or a loop only at the very end.
    """
    for period in range(1, max_period + 1):
        unit = text[-period:]
        repeats = 1
        while text.endswith(unit * (repeats + 1)):
            repeats += 1
        if repeats >= min_repeats and repeats * period >= min_span:
            return True
    return False


def is_degenerate(text: str, cfg: QualityConfig) -> bool:
    words = text.lower().split()
    if len(words) >= cfg.min_words_for_ngram_check:
        if distinct_ngram_ratio(words, cfg.ngram) < cfg.min_distinct_ngram_ratio:
            return True
    return has_tail_loop(text.rstrip())


def assess(text: str, finish_reason: str, cfg: QualityConfig) -> str:
    """Status of one output: `empty`, `degenerate`, `truncated` or `ok`."""
    stripped = text.strip()
    if len(stripped) < cfg.min_chars:
        return "empty"
    if is_degenerate(stripped, cfg):
        return "degenerate"
    if finish_reason == "length":
        return "truncated"
    return "ok"
