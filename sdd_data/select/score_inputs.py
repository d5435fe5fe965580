"""What the degradation scorers read: token ids per row and the logit positions to score.

Response mode (the default): the prompt is the row's user turn rendered with the chat template
and the generation prompt; the response is what the template renders after it for the assistant
turn (the assistant text and the end-of-turn token, trailing whitespace dropped). Prompt and
response are tokenized apart and joined, as when the model generated the response. The logit at
position t predicts token t + 1, so the scored positions run from the last prompt token to the
second-to-last token. Rows longer than `max_length` keep the response's start: the prompt keeps
its last tokens (at least half of `max_length` when it is that long) and the response fills the rest.

Instruction mode (the PASER code's score): the raw instruction, no template, tokenized with the
tokenizer's own special tokens; every position is scored (the code sums them; here they are
averaged so long instructions do not count twice against the length penalty of IES).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import SddError
from ..records import user_prompt

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


def tokenizer_differences(original, pruned) -> list[str]:
    """What differs between two tokenizers: vocabulary, special tokens, chat template (empty if nothing)."""
    differences = []
    vocab_o, vocab_p = original.get_vocab(), pruned.get_vocab()
    if vocab_o != vocab_p:
        changed = sum(1 for token in vocab_o.keys() | vocab_p.keys() if vocab_o.get(token) != vocab_p.get(token))
        differences.append(f"vocabulary ({len(vocab_o)} vs {len(vocab_p)} tokens, {changed} tokens differ)")
    for name in ("bos_token", "eos_token", "unk_token", "pad_token"):
        if getattr(original, name, None) != getattr(pruned, name, None):
            differences.append(f"special token {name} ({getattr(original, name, None)!r} vs "
                               f"{getattr(pruned, name, None)!r})")
    specials_o, specials_p = set(original.all_special_tokens), set(pruned.all_special_tokens)
    if specials_o != specials_p:
        only = sorted(specials_o ^ specials_p)
        differences.append(f"special tokens ({', '.join(map(repr, only[:5]))} in only one of them)")
    if (original.chat_template or None) != (pruned.chat_template or None):
        differences.append("chat template")
    return differences


def check_same_tokenizer(original, pruned, original_name: str, pruned_name: str) -> None:
    """Raise an error naming what differs when the two models do not share one tokenizer."""
    differences = tokenizer_differences(original, pruned)
    if differences:
        raise SddError(f"the original model {original_name} and the pruned model {pruned_name} must share one "
                       f"tokenizer, but theirs differ in: {'; '.join(differences)}")


def _prompt_and_response(tokenizer, user: str, response: str) -> tuple[str, str]:
    if not tokenizer.chat_template:
        raise SddError("the models' tokenizer has no chat template, so prompts and responses cannot be rendered")
    turn = [{"role": "user", "content": user}]
    prompt = tokenizer.apply_chat_template(turn, tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template([*turn, {"role": "assistant", "content": response}], tokenize=False)
    if not full.startswith(prompt):
        raise SddError("the chat template renders the assistant turn in a way that does not extend the "
                       "generation prompt; response tokens cannot be located")
    return prompt, full[len(prompt):].rstrip()


def _cut(prompt_ids: list[int], response_ids: list[int], max_length: int) -> tuple[list[int], list[int]]:
    if len(prompt_ids) + len(response_ids) <= max_length:
        return prompt_ids, response_ids
    keep_prompt = min(len(prompt_ids), max(max_length // 2, max_length - len(response_ids)))
    return prompt_ids[len(prompt_ids) - keep_prompt:], response_ids[:max_length - keep_prompt]


def scoring_rows(tokenizer, rows: list[dict], mode: str = "response", max_length: int = 1024) -> list[ScoringRow]:
    """Token ids and scored positions of every row (`instruction`, `input`, `response` fields)."""
    if mode not in MODES:
        raise SddError(f"unknown degradation mode {mode!r}; known: {', '.join(MODES)}")
    if max_length < 4:
        raise SddError(f"max_length must be at least 4 tokens, got {max_length}")
    scored = []
    for row in rows:
        prompt, response = _prompt_and_response(tokenizer, user_prompt(row["instruction"], row["input"]),
                                                row["response"])
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
        scored.append(ScoringRow(tuple(token_ids), first, last, len(prompt_ids), len(response_ids), truncated))
    return scored
