"""A reasoning teacher's thinking (`<think>…</think>`) apart from its final answer.

The filter judges the answer alone; what the stored rewrite keeps of the thinking is the `reasoning` mode:
`keep` (the thinking stays in the response, as the teacher wrote it), `strip` (it is dropped) or `separate`
(the default: the response is the answer and the thinking goes to its own field, so nothing the teacher wrote
is lost and a student is trained on answers unless asked otherwise). A rewrite that ends inside its thinking
has no answer: it is `truncated`, whatever the engine's finish reason.
"""

from __future__ import annotations

from dataclasses import dataclass

from sdd_data.errors import SddError

OPEN, CLOSE = "<think>", "</think>"
REASONING_MODES = ("keep", "strip", "separate")


@dataclass(frozen=True)
class SplitRewrite:
    """A rewrite cut into its thinking (None when there is none) and its answer."""

    reasoning: str | None
    answer: str
    unfinished: bool = False
    opened_by_prompt: bool = False


def opens_thinking(prompt: str) -> bool:
    """Whether a rendered prompt leaves a thinking block open (its template starts the turn with `<think>`)."""
    return prompt.rfind(OPEN) > prompt.rfind(CLOSE)


def split_reasoning(text: str, thinking_open: bool = False) -> SplitRewrite:
    """The thinking and the answer of a rewrite; `thinking_open` when the prompt already opened `<think>`."""
    start = text.find(OPEN)
    if start < 0 and not thinking_open:
        return SplitRewrite(None, text)
    begin = 0 if start < 0 else start + len(OPEN)
    end = text.find(CLOSE, begin)
    opened = start < 0
    if end < 0:
        return SplitRewrite(text[begin:].strip(), "", unfinished=True, opened_by_prompt=opened)
    if start > 0 and text[:start].strip():  # text before the thinking is not thinking: leave the rewrite whole
        return SplitRewrite(None, text)
    return SplitRewrite(text[begin:end].strip(), text[end + len(CLOSE) :].strip(), opened_by_prompt=opened)


def check_mode(mode: str) -> None:
    """Refuse a reasoning mode that is not one of REASONING_MODES."""
    if mode not in REASONING_MODES:
        raise SddError(f"reasoning must be one of {', '.join(REASONING_MODES)}, not {mode!r}")


def stored_response(text: str, split: SplitRewrite, mode: str) -> tuple[str, str | None]:
    """The rewrite to store and the thinking to store beside it, under a reasoning mode (checked by the stage,
    `check_mode`, before any row is generated).

    `keep` stores the whole output, with the `<think>` that the prompt opened put back in front of it."""
    if split.reasoning is None:
        return text, None
    if mode == "keep":
        return (f"{OPEN}\n{text}" if split.opened_by_prompt else text), None
    return split.answer, split.reasoning if mode == "separate" else None
