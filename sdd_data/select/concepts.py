"""PASER's concept consistency graph (NTEM): skip rows whose key concepts contradict accepted rows.

Concepts are RAKE-style key phrases: the text is cut at punctuation and stopwords, each word is
scored degree/frequency (degree: total length of the phrases it appears in), a phrase scores the sum
of its words, and the best `top_k` phrases are kept. They are normalised (lower case, naive plural
stemming) and merged into an existing vertex when rapidfuzz scores them at least `merge_score`
against a vertex that shares their first three characters and all their digits (so "100 degree"
never merges into "150 degree").

The graph's vertices are the concepts of accepted rows, its edges join concepts accepted together.
A candidate is consistent iff every pair of its concepts that are both already vertices is joined by
an edge; so a row that brings together two known concepts never seen together is a conflict.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter, defaultdict

from rapidfuzz import fuzz, process

STOPWORDS = frozenset(
    """
a about above after again against all also am an and any are as at be because been before being below
between both but by can could did do does doing down during each either else few for from further had
has have having he her here hers herself him himself his how however i if in into is it its itself just
let me might more most must my myself no nor not now of off on once only or other our ours ourselves
out over own please same shall she should so some such than that the their theirs them themselves then
there these they this those through to too under until up upon us very was we were what when where which
while who whom why will with within without would yet you your yours yourself yourselves
""".split()
)

_SPLITTER = re.compile(r"[^\w\s'-]+|\s['-]+|['-]+\s")
_WORD = re.compile(r"[\w'-]+")
_BUCKET = 3
_DIGITS = re.compile(r"\D+")


def key_phrases(text: str, top_k: int = 6) -> list[str]:
    """The `top_k` best RAKE-style key phrases of a text, best first (lower case, unnormalised)."""
    phrases: list[tuple[str, ...]] = []
    for chunk in _SPLITTER.split(text.lower()):
        phrase: list[str] = []
        for word in _WORD.findall(chunk):
            word = word.strip("'-")
            if not word or word in STOPWORDS:
                if phrase:
                    phrases.append(tuple(phrase))
                phrase = []
            else:
                phrase.append(word)
        if phrase:
            phrases.append(tuple(phrase))
    frequency: Counter[str] = Counter()
    degree: Counter[str] = Counter()
    for phrase in phrases:
        for word in phrase:
            frequency[word] += 1
            degree[word] += len(phrase)
    scored = {" ".join(phrase): sum(degree[word] / frequency[word] for word in phrase) for phrase in phrases}
    return sorted(scored, key=lambda phrase: -scored[phrase])[:top_k]


def _bucket(concept: str) -> str:
    """Concepts are only merged within a bucket: same first characters, same digits."""
    return concept[:_BUCKET] + "|" + _DIGITS.sub("", concept)


def _singular(word: str) -> str:
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def normalise_concept(phrase: str) -> str:
    """Lower case, single spaces, every word naively singular ("boils" → "boil", "cities" → "city")."""
    return " ".join(_singular(word) for word in phrase.lower().split())


class ConceptGraph:
    """Concepts of accepted rows and which of them were accepted together."""

    def __init__(self, merge_score: float = 90.0):
        self.merge_score = merge_score
        self.edges: dict[str, set[str]] = {}
        self._buckets: dict[str, list[str]] = defaultdict(list)
        self._merged: dict[str, str] = {}

    def canonical(self, concept: str) -> str:
        """The vertex this normalised concept merges into, or the concept itself when none is close."""
        if concept in self.edges:
            return concept
        if concept in self._merged:
            return self._merged[concept]
        match = process.extractOne(
            concept, self._buckets.get(_bucket(concept), ()), scorer=fuzz.ratio, score_cutoff=self.merge_score
        )
        if match is None:
            return concept
        self._merged[concept] = match[0]
        return match[0]

    def concepts(self, text: str, top_k: int) -> list[str]:
        """The text's key phrases as distinct canonical concepts."""
        found = (self.canonical(normalise_concept(phrase)) for phrase in key_phrases(text, top_k))
        return list(dict.fromkeys(concept for concept in found if concept))

    def conflict(self, concepts: list[str]) -> tuple[str, str] | None:
        """The first pair of known concepts (sorted) that no accepted row joined, or None if consistent."""
        known = sorted(concept for concept in concepts if concept in self.edges)
        for first, second in itertools.combinations(known, 2):
            if second not in self.edges[first]:
                return first, second
        return None

    def accept(self, concepts: list[str]) -> None:
        """Add the concepts as vertices and join every pair of them."""
        for concept in concepts:
            if concept not in self.edges:
                self.edges[concept] = set()
                self._buckets[_bucket(concept)].append(concept)
        for first, second in itertools.combinations(concepts, 2):
            self.edges[first].add(second)
            self.edges[second].add(first)
