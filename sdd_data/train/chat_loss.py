"""SFT rows whose loss covers every assistant turn and nothing else, with TRL's own mechanisms.

Conversations with one answer, at the end, become conversational prompt/completion rows, and TRL's
`completion_only_loss` trains on the answer. When some conversation has several assistant turns:

- with a chat template that marks assistant output (`{% generation %}`), whether the model's own, TRL's
  training variant of it (`trl.chat_template_utils.get_training_chat_template`) or one of `TRAINING_TEMPLATES`
  here, the rows stay whole `messages` and TRL's `assistant_only_loss` masks everything but the assistant turns.
  The marked template is used only when it renders every training conversation exactly as the model's own does;
- otherwise each assistant turn becomes its own prompt/completion row (prompt = every turn before it), so
  each turn is still trained on exactly once, at the cost of encoding the earlier turns again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


def chatml_template(default_system: str | None = None, marked: bool = False) -> str:
    """The ChatML chat template (with the system prompt it adds when a conversation has none), exactly as
    models ship it; `marked` wraps each assistant turn's text and end of turn in `{% generation %}` markers."""
    opening = (
        "{% if loop.first and messages[0]['role'] != 'system' %}"
        f"{{{{ '<|im_start|>system\n{default_system}<|im_end|>\n' }}}}{{% endif %}}"
        if default_system
        else ""
    )
    plain = "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    if marked:
        plain = (
            "{% if message['role'] == 'assistant' %}{{ '<|im_start|>assistant\n' }}{% generation %}"
            "{{ message['content'] + '<|im_end|>' + '\n' }}{% endgeneration %}"
            f"{{% else %}}{plain}{{% endif %}}"
        )
    return (
        f"{{% for message in messages %}}{opening}{plain}{{% endfor %}}"
        "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
    )


SMOLLM2_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
TRAINING_TEMPLATES = {
    chatml_template(system): chatml_template(system, marked=True) for system in (None, SMOLLM2_SYSTEM)
}
"""A model's chat template -> the same template with `{% generation %}` markers, for templates TRL does not know."""


@dataclass
class SftRows:
    """The SFT dataset, and the marked chat template to train with (None: prompt/completion rows)."""

    dataset: Any
    training_template: str | None
    rows_per_turn: bool = False


def marked_template(tokenizer: Any) -> str | None:
    """A chat template with generation markers equivalent to the tokenizer's own, or None when none is known."""
    from trl.chat_template_utils import get_training_chat_template, has_generation_markers

    own = tokenizer.chat_template
    if isinstance(own, str) and has_generation_markers(own):
        return own
    if own in TRAINING_TEMPLATES:
        return TRAINING_TEMPLATES[own]
    try:
        return get_training_chat_template(tokenizer) or own
    except ValueError:  # TRL has no training variant of this template
        return None


def renders_alike(tokenizer: Any, template: str, conversations: list[list[dict]]) -> bool:
    """Whether `template` renders every conversation exactly as the tokenizer's own chat template does."""
    for turns in conversations:
        own = tokenizer.apply_chat_template(turns, tokenize=False)
        if tokenizer.apply_chat_template(turns, tokenize=False, chat_template=template) != own:
            return False
    return True


def per_assistant_turn(conversations: list[list[dict]]) -> list[list[dict]]:
    """Each conversation cut after each of its assistant turns, so a collator that trains on the last turn
    alone (TRL's GKD) still trains on every assistant turn once; one-answer conversations stay as they are."""
    return [
        turns[: place + 1] for turns in conversations for place, turn in enumerate(turns) if turn["role"] == "assistant"
    ]


def sft_rows(conversations: list[list[dict]], tokenizer: Any) -> SftRows:
    """The SFT dataset of some conversations, with the loss on every assistant turn and nothing else."""
    import datasets

    multi_turn = [turns for turns in conversations if sum(turn["role"] == "assistant" for turn in turns) > 1]
    template = marked_template(tokenizer) if multi_turn else None
    if template is not None and renders_alike(tokenizer, template, multi_turn):
        return SftRows(datasets.Dataset.from_list([{"messages": turns} for turns in conversations]), template)
    rows = [{"prompt": turns[:-1], "completion": turns[-1:]} for turns in per_assistant_turn(conversations)]
    return SftRows(datasets.Dataset.from_list(rows), None, rows_per_turn=bool(multi_turn))
