"""Rows as compact columns for the page: categories as codes, texts cut to one limit that fits a budget.

The page holds every row, so its size must stay bounded however long the texts are: each text is cut to at
most `max_chars`, and when all texts together still exceed the budget, to the largest one limit under which
they fit. A cut text ends with CUT_MARK; the page says where the whole rows are.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from itertools import accumulate

CUT_MARK = "\u2026"
"""Appended to a text that was cut."""


def categorical(values: Sequence[str | None]) -> dict:
    """A column of few distinct values as `{"labels": [...], "codes": [...]}` (labels in first-seen order)."""
    index: dict[str, int] = {}
    codes = []
    for value in values:
        label = "" if value is None else str(value)
        codes.append(index.setdefault(label, len(index)))
    return {"labels": list(index), "codes": codes}


def text_limit(lengths: Sequence[int], max_chars: int, budget_chars: int) -> int:
    """The largest limit L <= max_chars with sum(min(length, L)) <= budget_chars (at least 1)."""
    ordered = sorted(lengths)
    prefix = [0, *accumulate(ordered)]

    def total(limit: int) -> int:
        shorter = bisect_right(ordered, limit)
        return prefix[shorter] + limit * (len(ordered) - shorter)

    if total(max_chars) <= budget_chars:
        return max_chars
    low, high = 1, max_chars
    while low < high:
        middle = (low + high + 1) // 2
        if total(middle) <= budget_chars:
            low = middle
        else:
            high = middle - 1
    return low


def cut_texts(
    columns: dict[str, Sequence[str | None]], max_chars: int, budget_chars: int
) -> tuple[dict[str, list[str]], int, int]:
    """Every text column cut to one limit: (columns, the limit, how many texts were cut). None becomes ""."""
    lengths = [len(text) for column in columns.values() for text in column if text]
    limit = text_limit(lengths, max_chars, budget_chars) if lengths else max_chars
    cut = 0
    result: dict[str, list[str]] = {}
    for name, column in columns.items():
        texts = []
        for text in column:
            text = text or ""
            if len(text) > limit:
                text = text[:limit] + CUT_MARK
                cut += 1
            texts.append(text)
        result[name] = texts
    return result, limit, cut


def word_count(text: str | None) -> int:
    """Whitespace-separated words in a text (0 for none)."""
    return len(text.split()) if text else 0
