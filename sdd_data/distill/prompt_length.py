"""Rewrite prompts against the teacher's context, measured before anything is generated.

A prompt fits when it leaves room for at least one new token (prompt tokens + 1 <= context), the rule
vLLM applies; generation then stops at the end of the context, and a rewrite cut there is truncated.
A prompt that does not fit is never sent to the teacher: its row takes the filter's failure decision
with the reason `prompt_too_long`, or, when asked (`truncate_long_prompts`), the reference response
inside the prompt is cut from its end until the prompt leaves room for `max_new_tokens` new tokens
(at most half the context). The instruction is never cut: a row whose prompt is too long even with
no reference left is set aside all the same. The stored row always keeps its whole response.
"""

from __future__ import annotations

from dataclasses import dataclass

from sdd_data.distill.templates import Template
from sdd_data.engines.base import count_tokens, prompt_fits

PROMPT_TOO_LONG = "prompt_too_long"
PROMPT_TRUNCATED = "prompt_truncated"


@dataclass(frozen=True)
class FittedPrompt:
    """A row's rendered prompt, or None (with the reason) when it is not sent; its length in tokens when known."""

    text: str | None
    tokens: int | None
    truncated: bool = False
    failure: str = PROMPT_TOO_LONG


def fit_prompt(
    row: dict, template: Template, tokenizer, context_length: int | None, max_new_tokens: int, truncate: bool
) -> FittedPrompt:
    """Render a row's prompt and check it against the context (nothing is measured when the context is unknown)."""
    prompt = template.render(row, tokenizer)
    if context_length is None:
        return FittedPrompt(prompt, None)
    tokens = count_tokens(tokenizer, prompt)
    if prompt_fits(tokens, context_length):
        return FittedPrompt(prompt, tokens)
    if truncate:
        budget = context_length - min(max_new_tokens, context_length // 2)
        cut = _cut_reference(row, template, tokenizer, budget, tokens)
        if cut is not None:
            return cut
    return FittedPrompt(None, tokens)


def _cut_reference(row: dict, template: Template, tokenizer, budget: int, tokens: int) -> FittedPrompt | None:
    """The prompt with the reference response cut from its end to fit `budget` tokens, or None if it cannot fit."""
    if "{reference}" not in template.user:
        return None
    reference_ids = tokenizer(row["response"].strip(), add_special_tokens=False).input_ids
    keep = len(reference_ids)
    while keep > 0:
        # Token boundaries can shift when the cut text is tokenized again, so measure and repeat.
        keep = max(0, keep - (tokens - budget))
        prompt = template.render({**row, "response": tokenizer.decode(reference_ids[:keep])}, tokenizer)
        tokens = count_tokens(tokenizer, prompt)
        if tokens <= budget:
            return FittedPrompt(prompt, tokens, truncated=True)
    return None
