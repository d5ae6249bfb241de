"""Cleaning free text from scraped metadata (HTML entities, tag fragments, stray whitespace)."""

from __future__ import annotations

import ast
import html
import json
import re
import warnings
from typing import Any

from ur4rec.data.schema import LONE_SURROGATE, brief

# A tag, or a tag cut off at the end of the string (`<span class="a-size-medium"` occurs in real titles).
TAG = re.compile(r"<[^<>]*(?:>|$)")
SPACE = re.compile(r"\s+")


def clean_text(value: Any) -> str:
    """Entities unescaped (twice: real files double-escape `&amp;amp;`), tags removed, whitespace collapsed,
    half surrogate pairs replaced by U+FFFD."""
    if value is None:
        return ""
    text = LONE_SURROGATE.sub("\ufffd", html.unescape(html.unescape(str(value))))
    text = TAG.sub(" ", text)
    return SPACE.sub(" ", text).strip()


def clean_list(values: Any) -> list[str]:
    """Cleaned, non-empty, de-duplicated strings in their original order."""
    if not isinstance(values, (list, tuple)):
        values = [values] if values else []
    out: list[str] = []
    for value in values:
        text = clean_text(value)
        if text and text not in out:
            out.append(text)
    return out


def id_text(value: Any) -> str:
    """An id field as text: strings and integers only (a list or object where an id belongs is no id)."""
    if isinstance(value, bool) or not isinstance(value, (str, int)) or LONE_SURROGATE.search(str(value)):
        return ""
    return clean_text(value)


def parse_record(line: str) -> dict[str, Any]:
    """One JSON object, or a Python dict literal (`{u'id': ...}` as in older UCSD dumps); ValueError if neither."""
    try:
        record = json.loads(line)
    except (ValueError, RecursionError):  # JSONDecodeError is a ValueError; deep nesting recurses
        try:
            with warnings.catch_warnings():  # garbage like `1abc` warns before it fails; the failure is reported
                warnings.simplefilter("ignore", SyntaxWarning)
                record = ast.literal_eval(line)
        # Garbage can fail in any of these ways: `{[1]: 2}` is a TypeError (unhashable key), for one.
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError) as exc:
            raise ValueError(f"neither JSON nor a Python dict literal: {brief(exc)}") from exc
    if not isinstance(record, dict):
        raise ValueError(f"expected an object, got {type(record).__name__}")
    return record

