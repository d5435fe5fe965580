"""What the degradation scorers read: token ids per row and the logit positions to score.

Response mode (the default): the prompt is the row's user turn rendered with the chat template
and the generation prompt; the response is what the template renders after it for the assistant
turn (the assistant text and the end-of-turn token, trailing whitespace dropped). Prompt and
response are tokenized apart and joined, as when the model generated the response. The logit at
position t predicts token t + 1, so the scored positions run from the last prompt token to the
second-to-last token. Rows longer than `max_length` keep the response's start: the prompt keeps
its last tokens (at least half of `max_length` when it is that long) and the response fills the rest.

A conversation of more than one exchange is scored on every assistant token: each assistant turn is a
response whose prompt is every turn before it (under teacher forcing a turn's logits see exactly those
turns, so this equals scoring the whole conversation), and the conversation's score is the mean over all
its scored positions (`per_row`).

Instruction mode (the PASER code's score): the raw instruction, no template, tokenized with the
tokenizer's own special tokens; every position is scored (the code sums them; here they are
averaged so long instructions do not count twice against the length penalty of IES).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sdd_data.data.records import user_prompt
from sdd_data.errors import SddError

MODES = ("response", "instruction")


@dataclass(frozen=True)
class ScoringRow:
    """One row's token ids, its scored logit positions [first, last], and its full token counts."""

    token_ids: tuple[int, ...]
    first: int
    last: int
    prompt_tokens: int
    response_tokens: int
    truncated: bool


def _prompt_and_response(tokenizer, before: list[dict], response: str) -> tuple[str, str]:
    if not tokenizer.chat_template:
        raise SddError("the models' tokenizer has no chat template, so prompts and responses cannot be rendered")
    prompt = tokenizer.apply_chat_template(before, tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template([*before, {"role": "assistant", "content": response}], tokenize=False)
    if not full.startswith(prompt):
        raise SddError(
            "the chat template renders the assistant turn in a way that does not extend the "
            "generation prompt; response tokens cannot be located"
        )
    return prompt, full[len(prompt) :].rstrip()


def _cut(prompt_ids: list[int], response_ids: list[int], max_length: int) -> tuple[list[int], list[int]]:
    if len(prompt_ids) + len(response_ids) <= max_length:
        return prompt_ids, response_ids
    keep_prompt = min(len(prompt_ids), max(max_length // 2, max_length - len(response_ids)))
    return prompt_ids[len(prompt_ids) - keep_prompt :], response_ids[: max_length - keep_prompt]


def scoring_rows(tokenizer, rows: list[dict], mode: str = "response", max_length: int = 1024) -> list[ScoringRow]:
    """Token ids and scored positions of every single-exchange row (`instruction`, `input`, `response` fields)."""
    return scoring_units(tokenizer, rows, mode, max_length)[0]


def _exchanges(row: dict, mode: str) -> list[tuple[list[dict], str]]:
    """The (turns before, response) pairs of a row that are scored."""
    messages = row.get("messages")
    if messages is None or mode != "response":
        return [([{"role": "user", "content": user_prompt(row["instruction"], row["input"])}], row["response"])]
    return [
        (messages[:place], turn["content"])
        for place, turn in enumerate(messages)
        if turn["role"] == "assistant" and turn["content"].strip()
    ]


def scoring_units(
    tokenizer, rows: list[dict], mode: str = "response", max_length: int = 1024
) -> tuple[list[ScoringRow], list[int]]:
    """Token ids and scored positions of every exchange scored, and the row each belongs to: one per row, or
    in response mode one per assistant turn of a conversation (rows with `messages`)."""
    if mode not in MODES:
        raise SddError(f"unknown degradation mode {mode!r}; known: {', '.join(MODES)}")
    if max_length < 4:
        raise SddError(f"max_length must be at least 4 tokens, got {max_length}")
    scored, owners = [], []
    for owner, row in enumerate(rows):
        exchanges = _exchanges(row, mode)
        if not exchanges:
            raise SddError(f"row {row.get('id', '?')} has no assistant response to score")
        for before, response_text in exchanges:
            scored.append(_unit(tokenizer, row, before, response_text, mode, max_length))
            owners.append(owner)
    return scored, owners


def per_row(units: list[ScoringRow], owners: list[int], scores, rows: int) -> tuple[np.ndarray, list[ScoringRow]]:
    """Each row's score (the mean over the scored positions of all its units) and token counts."""
    scores = np.asarray(scores, dtype=np.float64)
    weights = np.array([unit.last - unit.first + 1 for unit in units], dtype=np.float64)
    owner_index = np.asarray(owners)
    totals = np.bincount(owner_index, weights=scores * weights, minlength=rows)
    combined = totals / np.bincount(owner_index, weights=weights, minlength=rows)
    summaries: list[ScoringRow | None] = [None] * rows
    for owner, unit in zip(owners, units):
        earlier = summaries[owner]
        if earlier is None:
            summaries[owner] = unit
            continue
        responses = earlier.response_tokens + unit.response_tokens
        summaries[owner] = ScoringRow(
            earlier.token_ids,
            earlier.first,
            earlier.last,
            unit.prompt_tokens + unit.response_tokens - responses,  # every turn that is not an answer
            responses,
            earlier.truncated or unit.truncated,
        )
    return combined, summaries  # type: ignore[return-value]


def _unit(tokenizer, row: dict, before: list[dict], response_text: str, mode: str, max_length: int) -> ScoringRow:
    """One scored exchange: its token ids and scored positions."""
    prompt, response = _prompt_and_response(tokenizer, before, response_text)
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    response_ids = tokenizer(response, add_special_tokens=False)["input_ids"]
    if mode == "response":
        kept_prompt, kept_response = _cut(prompt_ids, response_ids, max_length)
        token_ids = kept_prompt + kept_response
        first, last = len(kept_prompt) - 1, len(token_ids) - 2
        truncated = len(token_ids) < len(prompt_ids) + len(response_ids)
    else:
        instruction_ids = tokenizer(row["instruction"])["input_ids"]
        token_ids = instruction_ids[:max_length]
        first, last = 0, len(token_ids) - 1
        truncated = len(token_ids) < len(instruction_ids)
    if not token_ids or last < first or first < 0:
        raise SddError(f"row {row.get('id', '?')} has nothing to score in {mode} mode")
    return ScoringRow(tuple(token_ids), first, last, len(prompt_ids), len(response_ids), truncated)
