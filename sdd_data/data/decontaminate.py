"""Decontamination: flag training rows that share a long word n-gram with any evaluation item.

Texts are normalised (lower case, every run of characters other than letters and digits becomes one
space) and cut into word n-grams, 13 by default, the usual rule. A training row is contaminated when
its instruction, input or response shares any n-gram with an evaluation item; an item shorter than n
words cannot match, as under that rule.

Evaluation items are read from multiple-choice files (`{query, choices}`: the question followed by each
choice; `{context_options, continuation}`: each option followed by the continuation), or from any source
`sdd_data.data.sources` reads (the instruction, input and response of each row).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from sdd_data.errors import SddError
from sdd_data.text_files import read_json_lines

DEFAULT_NGRAM = 13
WORD_BREAK = re.compile(r"[\W_]+")


def normalised_words(text: str) -> list[str]:
    """The words of a text, lower case, with punctuation and spacing removed."""
    return WORD_BREAK.sub(" ", text.lower()).split()


def _grams(words: list[str], size: int) -> Iterable[tuple[str, ...]]:
    return (tuple(words[start : start + size]) for start in range(len(words) - size + 1))


@dataclass
class EvalIndex:
    """Every word n-gram of the evaluation items."""

    ngram: int = DEFAULT_NGRAM
    grams: set[tuple[str, ...]] = field(default_factory=set)
    items: int = 0
    sources: list[str] = field(default_factory=list)

    def add(self, text: str) -> None:
        """Index one evaluation text."""
        self.items += 1
        self.grams.update(_grams(normalised_words(text), self.ngram))

    def contaminated(self, text: str) -> bool:
        """Whether `text` shares an n-gram with any indexed item."""
        return any(gram in self.grams for gram in _grams(normalised_words(text), self.ngram))


def _mc_texts(row: dict) -> list[str]:
    if "context_options" in row:
        return [f"{option} {row.get('continuation', '')}" for option in row["context_options"]]
    return [f"{row.get('query', '')} {choice}" for choice in row.get("choices", [])]


def _file_texts(path: Path) -> list[str]:
    """The texts of an evaluation file: MC JSONL rows by their fields, anything else through the sources."""
    if path.suffix == ".jsonl":
        rows = [row for _, row in read_json_lines(path, "evaluation file")]
        if rows and ("query" in rows[0] or "context_options" in rows[0]):
            return [text for row in rows for text in _mc_texts(row)]
    from sdd_data.data.sources import SourceSpec, load_rows

    loaded = load_rows(SourceSpec(data=str(path)))
    return [text for row in loaded.rows for text in row_texts(row)]


def build_index(paths: Iterable[str], ngram: int = DEFAULT_NGRAM) -> EvalIndex:
    """An index of every item of the given evaluation files."""
    if ngram < 1:
        raise SddError(f"the decontamination n-gram must be at least 1 word, got {ngram}")
    index = EvalIndex(ngram)
    for text_path in paths:
        path = Path(text_path).expanduser()
        if not path.is_file():
            raise SddError(f"evaluation file {path} (to decontaminate against) does not exist")
        for text in _file_texts(path):
            index.add(text)
        index.sources.append(path.name)
    return index


def split_paths(text: str | None) -> list[str]:
    """Evaluation files from a comma-separated option value."""
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def row_texts(row: dict) -> list[str]:
    """The texts of a row: every turn of a conversation, else its instruction, input and response."""
    if row.get("conversation"):
        return [turn["content"] for turn in row["conversation"]]
    return [str(row.get(name) or "") for name in ("instruction", "input", "response")]


def row_text(row: dict) -> str:
    """The text of a row that decontamination checks: every turn of a conversation, or its instruction, input
    and response."""
    return "\n".join(row_texts(row))
