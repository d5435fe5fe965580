"""Near-duplicate instructions, found without comparing every pair.

Instructions are normalised (lower case, punctuation dropped, whitespace collapsed); equal
normalised texts are duplicates outright. Fuzzy duplicates (rapidfuzz `token_sort_ratio` ≥ the
threshold) are looked for only among neighbours in two sorted orders, the normalised text and its
words sorted, each row against the next `window` rows: O(N·window) comparisons. Limit: two
near-duplicates that sort more than `window` rows apart in both orders (different first words and
different smallest words, with many rows in between) are missed. Instructions whose numbers differ
("What is 12 + 30?" and "What is 12 + 31?") are never duplicates. `token_set_ratio` is not used: it
scores 100 whenever one instruction's words are a subset of the other's.
"""

from __future__ import annotations

import re

import numpy as np
from rapidfuzz import fuzz, process

_NOT_WORD = re.compile(r"[^\w\s]+")
_NOT_DIGIT = re.compile(r"\D+")


def normalise_instruction(text: str) -> str:
    """Lower case, no punctuation, single spaces."""
    return " ".join(_NOT_WORD.sub(" ", text.lower()).split())


def _root(parent: np.ndarray, row: int) -> int:
    while parent[row] != row:
        parent[row] = parent[parent[row]]
        row = parent[row]
    return row


def near_duplicates(
    instructions: list[str], threshold: float = 95.0, window: int = 5, priority: np.ndarray | None = None
) -> np.ndarray:
    """Per row, the index of the row it duplicates, or -1 for rows that are kept.

    In each group of near-duplicates the row with the highest `priority` is kept (ties: lowest index).
    """
    n_rows = len(instructions)
    normalised = [normalise_instruction(text) for text in instructions]
    digits = [_NOT_DIGIT.sub(" ", text).split() for text in normalised]
    parent = np.arange(n_rows)
    sorted_words = [" ".join(sorted(text.split())) for text in normalised]
    for keys in (normalised, sorted_words):
        order = sorted(range(n_rows), key=keys.__getitem__)
        ordered = [normalised[row] for row in order]
        for offset in range(1, min(window, n_rows - 1) + 1):
            scores = process.cpdist(
                ordered[:-offset], ordered[offset:], scorer=fuzz.token_sort_ratio, score_cutoff=threshold, workers=-1
            )
            for position in np.flatnonzero(scores >= threshold):
                if digits[order[position]] != digits[order[position + offset]]:
                    continue
                first, second = _root(parent, order[position]), _root(parent, order[position + offset])
                if first != second:
                    parent[max(first, second)] = min(first, second)
    roots = np.array([_root(parent, row) for row in range(n_rows)])
    priority = np.zeros(n_rows) if priority is None else np.asarray(priority, dtype=np.float64)
    best = np.lexsort((np.arange(n_rows), -priority, roots))
    keeper = {}
    for row in best:
        keeper.setdefault(roots[row], row)
    kept = np.array([keeper[root] for root in roots])
    return np.where(kept == np.arange(n_rows), -1, kept)
