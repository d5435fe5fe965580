"""Training rows from a distilled dataset: chat conversations whose last turn is the assistant's answer.

The data may be a distill run, a select output, a published folder, a saved `datasets` folder, or any
source `sdd_data.data.sources` reads. Rows the filter dropped never reach training. For SFT each conversation becomes
a conversational prompt/completion row (prompt = every turn before the answer, completion = the answer),
so TRL's completion-only loss trains on the answer and its end-of-turn token with any chat template.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sdd_data.artifacts import DATASET_KINDS, detect
from sdd_data.data.conversations import chat_messages
from sdd_data.data.records import sft_messages
from sdd_data.data.sources import SourceSpec, load_raw_dataset, load_rows
from sdd_data.data.stage_data import read_stage_dataset
from sdd_data.errors import SddError


@dataclass
class TrainingRows:
    """The usable conversations, how many rows were left out and why, and what the data is called."""

    conversations: list[list[dict]]
    skipped: dict[str, int]
    name: str
    config_name: str | None = None


def _conversation_table(data: str, split: str, config_name: str | None):
    """The data as a `datasets.Dataset` (and the published config used): any stage output holding a dataset,
    else whatever `sdd_data.data.sources` reads."""
    import datasets

    output = detect(data)
    if output is not None and output.kind in DATASET_KINDS:
        dataset = read_stage_dataset(data, split, config_name)
        return datasets.Dataset(dataset.table), dataset.config_name
    return load_raw_dataset(SourceSpec(data=data, split=split))[0], None


def _problem(messages) -> str | None:
    """Why a conversation cannot be trained on, or None."""
    if not isinstance(messages, list) or len(messages) < 2:
        return "no_prompt_and_answer"
    if any(not isinstance(m, dict) or not isinstance(m.get("content"), str) for m in messages):
        return "malformed_message"
    if messages[-1].get("role") != "assistant":
        return "last_turn_not_assistant"
    if not messages[-1]["content"].strip():
        return "empty_answer"
    return None


def load_training_rows(data: str, split: str = "train", config_name: str | None = None) -> TrainingRows:
    """The conversations to train on (dropped rows excluded); an SddError when none is usable."""
    table, config_name = _conversation_table(data, split, config_name)
    skipped: dict[str, int] = {}
    conversations = []
    if "messages" in table.column_names:
        decisions = table["decision"] if "decision" in table.column_names else [None] * len(table)
        candidates = []
        for messages, decision in zip(table["messages"], decisions):
            if decision == "dropped":
                skipped["dropped"] = skipped.get("dropped", 0) + 1
            else:
                candidates.append(messages)
    else:
        loaded = load_rows(SourceSpec(data=data, split=split))
        if loaded.invalid:
            skipped["invalid_row"] = len(loaded.invalid)
        candidates = [
            row["conversation"] if row["conversation"] else sft_messages(row, row["response"]) for row in loaded.rows
        ]
    for messages in candidates:
        problem = _problem(messages)
        if problem is None:
            conversations.append(chat_messages(messages))
        else:
            skipped[problem] = skipped.get(problem, 0) + 1
    name = Path(data).name if Path(data).expanduser().exists() else data
    if not conversations:
        reasons = ", ".join(f"{reason} {count}" for reason, count in sorted(skipped.items())) or "no rows"
        raise SddError(f"{data}: no usable training rows ({reasons})")
    return TrainingRows(conversations, skipped, name, config_name)


def conversation_lengths(tokenizer: Any, conversations: list[list[dict]]) -> list[int]:
    """Tokens in each conversation rendered with the chat template."""
    rendered = (tokenizer.apply_chat_template(turns, tokenize=False) for turns in conversations)
    return [len(tokenizer(text, add_special_tokens=False)["input_ids"]) for text in rendered]
