"""The consistency filter: checks a teacher rewrite row by row and decides what the row keeps.

Checks run in the order `CHECKS` lists them and the first failure decides. A rewrite that passes them
all replaces the response; one that fails falls back to the source response (as in SDFT) or
drops the row, depending on `FilterConfig.on_failure`.
"""

from __future__ import annotations

import ast
import re
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from rapidfuzz import fuzz

from sdd_data.data.answers import answers_match, extract_answer
from sdd_data.errors import SddError
from sdd_data.registry import Registry

SDFT_BANNED_PHRASES = (
    "reference answer",
    "your response",
    "my response",
    "your own response",
    "now it's your turn",
    "### instruction",
    "### response",
)
SDFT_BANNED_PREFIXES = ("your turn",)

FAILURE_DECISIONS = {"original": "original", "drop": "dropped"}


@dataclass(frozen=True)
class Verdict:
    """The outcome of one check: whether the rewrite passed and a machine-readable reason."""

    passed: bool
    reason: str
    extracted_answer: str | None = None


PASS = Verdict(True, "ok")


@dataclass
class FilterConfig:
    """What the consistency filter rejects and what a rejected row becomes."""

    on_failure: str = "original"
    """What a rejected row keeps: original (its source response, as in SDFT) or drop (the row goes)."""
    min_similarity: float | None = None
    """Least rapidfuzz similarity (0-100) of a free-text rewrite to the source response; unset = off."""
    loop_line_repeats: int = 4
    """A line repeated this many times marks a loop, unless the source repeats it as often; 0 = off."""
    loop_min_line_chars: int = 12
    """Lines shorter than this (closing braces, blank lines, short labels) never count as a loop."""
    loop_passage_chars: int = 40
    """Shortest passage that counts when looking for a passage repeated back to back."""
    loop_passage_repeats: int = 3
    """A passage repeated back to back this many times marks a loop, unless the source does too; 0 = off."""
    loop_word_repeats: int = 8
    """A word, or a phrase of up to 3 words, said this many times in a row marks a loop, unless the source does
    too; 0 = off."""
    banned_phrases: tuple[str, ...] = SDFT_BANNED_PHRASES
    """Phrases (any case) that show the rewrite talks about the prompt instead of answering."""
    banned_prefixes: tuple[str, ...] = SDFT_BANNED_PREFIXES
    """Openings (any case) that show the same."""

    def __post_init__(self) -> None:
        if self.on_failure not in FAILURE_DECISIONS:
            raise SddError(f"on_failure must be one of {', '.join(FAILURE_DECISIONS)}, not {self.on_failure!r}")
        self.banned_phrases = tuple(phrase.lower() for phrase in self.banned_phrases)
        self.banned_prefixes = tuple(prefix.lower() for prefix in self.banned_prefixes)


Check = Callable[[Mapping[str, Any], str, str, FilterConfig], Verdict]


def check_empty(row: Mapping[str, Any], text: str, finish_reason: str, config: FilterConfig) -> Verdict:
    """Fails a rewrite with no visible text."""
    return Verdict(False, "empty") if not text or text.isspace() else PASS


def check_truncated(row: Mapping[str, Any], text: str, finish_reason: str, config: FilterConfig) -> Verdict:
    """Fails a rewrite that stopped at the token limit."""
    return Verdict(False, "truncated") if finish_reason == "length" else PASS


def repeated_line_count(text: str, min_chars: int, threshold: int) -> int:
    """How often the most repeated line (stripped, at least `min_chars` long) occurs.

    Returns 0 without counting when fewer than `threshold` lines could repeat at all.
    """
    lines = text.split("\n")
    if threshold <= 0 or len(lines) - len(set(lines)) < threshold - 1:
        return 0
    counts = Counter(stripped for line in lines if len(stripped := line.strip()) >= min_chars)
    return max(counts.values(), default=0)


_PASSAGE_PROBES = (0.25, 0.5, 0.75, 1.0)  # where, as fractions of the text, repeated passages are sought
_LONGEST_PASSAGE = 600  # characters; longer repeated passages are left to the line check


def _copies_ending_at(text: str, end: int, min_chars: int) -> int:
    """How many identical passages (at least `min_chars` long) run back to back up to `end`."""
    window = text[end - min_chars : end]
    previous = text.rfind(window, max(0, end - min_chars - _LONGEST_PASSAGE), end - 1)
    if previous < 0:
        return 1
    period = end - min_chars - previous
    period *= -(-min_chars // period)  # a whole number of periods, at least min_chars long
    passage = text[end - period : end]
    copies, start = 1, end - period
    while start >= period and text.startswith(passage, start - period):
        copies += 1
        start -= period
    return copies


def repeated_passage_count(text: str, min_chars: int) -> int:
    """Most back-to-back copies of one passage ending at the quarter points or the end of the text."""
    if min_chars <= 0 or len(text) < 3 * min_chars:
        return 0
    most = 0
    for fraction in _PASSAGE_PROBES:
        most = max(most, _copies_ending_at(text, max(min_chars, int(len(text) * fraction)), min_chars))
    return most


_WORDS = re.compile(r"\w+")
_LONGEST_REPEATED_PHRASE = 3  # words


def repeated_phrase_count(text: str) -> int:
    """Most times a word, or a phrase of up to 3 words, is said in a row ("no no no", "I am I am I am")."""
    words = _WORDS.findall(text.lower())
    most = 1 if words else 0
    for size in range(1, _LONGEST_REPEATED_PHRASE + 1):
        # A run of words each equal to the word `size` places back is a phrase of `size` words said again and again.
        run = 0
        for word, earlier in zip(words[size:], words):
            run = run + 1 if word == earlier else 0
            most = max(most, 1 + run // size)
    return most


def _loops(text: str, config: FilterConfig) -> tuple[int, int, int]:
    """The line, passage and phrase repeat counts of a text that reach the config's thresholds (else 0)."""
    lines = repeated_line_count(text, config.loop_min_line_chars, config.loop_line_repeats)
    passages = repeated_passage_count(text, config.loop_passage_chars) if config.loop_passage_repeats > 0 else 0
    phrases = repeated_phrase_count(text) if config.loop_word_repeats > 0 else 0
    return (
        lines if lines >= config.loop_line_repeats > 0 else 0,
        passages if passages >= config.loop_passage_repeats else 0,
        phrases if phrases >= config.loop_word_repeats else 0,
    )


def check_looping(row: Mapping[str, Any], text: str, finish_reason: str, config: FilterConfig) -> Verdict:
    """Fails a rewrite that repeats a line, a passage or a short phrase more than the source response does."""
    counts = _loops(text, config)
    if not any(counts):
        return PASS
    source_counts = _loops(row.get("response") or "", config)
    if any(count > source for count, source in zip(counts, source_counts)):
        return Verdict(False, "looping")
    return PASS


def check_template_leak(row: Mapping[str, Any], text: str, finish_reason: str, config: FilterConfig) -> Verdict:
    """Fails a rewrite that mentions the reference answer or the prompt (SDFT's ban list)."""
    lowered = text.lower()
    if lowered.lstrip().startswith(config.banned_prefixes):
        return Verdict(False, "template_leak")
    for phrase in config.banned_phrases:
        if phrase in lowered:
            return Verdict(False, "template_leak")
    return PASS


TaskCheck = Callable[[Mapping[str, Any], str, FilterConfig], Verdict]


def reference_answer(row: Mapping[str, Any]) -> str | None:
    """The row's reference answer, or failing that the answer extracted from its response."""
    given = row.get("reference_answer")
    if given is not None and str(given).strip():
        return str(given).strip()
    return extract_answer(row.get("response") or "", row["task"])


def check_answer(row: Mapping[str, Any], text: str, config: FilterConfig) -> Verdict:
    """Fails a rewrite whose final answer is missing or differs from the reference answer."""
    reference = reference_answer(row)
    if reference is None:
        return Verdict(False, "no_reference_answer")
    predicted = extract_answer(text, row["task"])
    if predicted is None:
        return Verdict(False, "no_answer")
    if not answers_match(predicted, reference):
        return Verdict(False, "answer_mismatch", predicted)
    return Verdict(True, "ok", predicted)


_CODE_FENCE = re.compile(r"^[ \t]*```[ \t]*([\w+#.-]*)[^\n]*\n(.*?)^[ \t]*```", re.MULTILINE | re.DOTALL)
PYTHON_FENCE_TAGS = frozenset({"python", "py", "python3"})


def code_blocks(text: str) -> list[tuple[str, str]]:
    """The (language tag, code) of each closed fenced code block."""
    return _CODE_FENCE.findall(text) if "```" in text else []


def _parses(code: str) -> bool:
    """Whether the code is valid Python syntax."""
    try:
        ast.parse(code)
    except (SyntaxError, ValueError):
        return False
    return True


def check_code(row: Mapping[str, Any], text: str, config: FilterConfig) -> Verdict:
    """Fails a rewrite without a code block when the source had one, or with invalid Python."""
    if not code_blocks(row.get("response") or ""):
        return PASS
    blocks = code_blocks(text)
    if not blocks:
        return Verdict(False, "no_code")
    for language, code in blocks:
        if language.lower() in PYTHON_FENCE_TAGS and not _parses(code):
            return Verdict(False, "code_syntax_error")
    return PASS


TASK_CHECKS: Registry[TaskCheck] = Registry(
    "task check", {"math": check_answer, "mc": check_answer, "code": check_code}
)
"""Task -> the content check of its rows; rows of other tasks (free) pass unchecked."""


def check_task(row: Mapping[str, Any], text: str, finish_reason: str, config: FilterConfig) -> Verdict:
    """Runs the content check for the row's task (answers for math and mc, syntax for code)."""
    return TASK_CHECKS.get(row["task"])(row, text, config) if row["task"] in TASK_CHECKS else PASS


def check_similarity(row: Mapping[str, Any], text: str, finish_reason: str, config: FilterConfig) -> Verdict:
    """Fails a free-text rewrite too far from the source response (only when enabled)."""
    if config.min_similarity is None or row["task"] != "free":
        return PASS
    if fuzz.ratio(text, row.get("response") or "") < config.min_similarity:
        return Verdict(False, "low_similarity")
    return PASS


CHECKS: Registry[Check] = Registry(
    "check",
    {
        "empty": check_empty,
        "truncated": check_truncated,
        "looping": check_looping,
        "template_leak": check_template_leak,
        "task": check_task,
        "similarity": check_similarity,
    },
)
"""Check name -> check, in the order they run."""


@dataclass(frozen=True)
class Decision:
    """What a row keeps: the rewrite, its original response, or nothing; and why."""

    decision: str
    reason: str
    extracted_answer: str | None = None


def decide(row: Mapping[str, Any], teacher_response: str, finish_reason: str, config: FilterConfig) -> Decision:
    """Run every check on a rewrite; keep it if all pass, else apply `config.on_failure`."""
    answer = None
    for _, check in CHECKS.items():
        verdict = check(row, teacher_response, finish_reason, config)
        if not verdict.passed:
            return Decision(FAILURE_DECISIONS[config.on_failure], verdict.reason, verdict.extracted_answer)
        if verdict.extracted_answer is not None:
            answer = verdict.extracted_answer
    return Decision("rewrite", "ok", answer)
