"""The canonical row schema and the column presets that map source datasets onto it."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

from sdd_data.registry import Registry

TASKS = ("math", "mc", "code", "free")
ROW_COLUMNS = ("id", "source", "instruction", "input", "response", "reference_answer", "task", "meta")
CONVERSATION_PRESETS = ("messages", "sharegpt")
"""Presets whose rows are whole chat conversations (read by `sdd_data.data.conversations`)."""
DECISIONS = ("rewrite", "original", "dropped")


@dataclass(frozen=True)
class Preset:
    """How a known dataset layout maps onto the canonical row."""

    name: str
    instruction: str
    response: str
    input: str | None = None
    reference_answer: str | None = None
    task: str = "free"
    description: str = ""
    signature: tuple[str, ...] = field(default=())  # columns that identify the layout

    @property
    def columns(self) -> dict[str, str | None]:
        return {
            "instruction": self.instruction,
            "input": self.input,
            "response": self.response,
            "reference_answer": self.reference_answer,
        }


PRESETS: Registry[Preset] = Registry(
    "column preset",
    {
        preset.name: preset
        for preset in (
            Preset(
                "alpaca",
                "instruction",
                "output",
                input="input",
                description="instruction / input / output (Alpaca, SDFT's Dolly subset)",
                signature=("instruction", "output"),
            ),
            Preset(
                "dolly",
                "instruction",
                "response",
                input="context",
                description="instruction / context / response (databricks-dolly-15k)",
                signature=("instruction", "context", "response"),
            ),
            Preset(
                "gsm8k",
                "question",
                "answer",
                task="math",
                description="question / answer ending in '#### N' (GSM8K)",
                signature=("question", "answer"),
            ),
            Preset(
                "openmathinstruct",
                "problem",
                "generated_solution",
                reference_answer="expected_answer",
                task="math",
                description="problem / generated_solution / expected_answer (OpenMathInstruct)",
                signature=("problem", "generated_solution"),
            ),
            Preset(
                "messages",
                "messages",
                "messages",
                description="chat `messages` (role/content, tool calls): every turn, each assistant turn rewritten",
                signature=("messages",),
            ),
            Preset(
                "sharegpt",
                "conversations",
                "conversations",
                description="ShareGPT `conversations` (from/value: system, human, gpt, ...), read as `messages`",
                signature=("conversations",),
            ),
        )
    },
)
"""Preset name -> column mapping."""


def detect_preset(columns: list[str]) -> Preset | None:
    """The preset whose signature columns are all present (most specific first)."""
    available = set(columns)
    for preset in sorted((preset for _, preset in PRESETS.items()), key=lambda p: -len(p.signature)):
        if preset.signature and set(preset.signature) <= available:
            return preset
    return None


def row_id(source: str, index: int) -> str:
    """A stable id for a row without one: a hash of its source name and position."""
    return hashlib.sha1(f"{source}:{index}".encode()).hexdigest()[:16]


_GSM8K_ANSWER = re.compile(r"####\s*(.+?)\s*$", re.S)


def gsm8k_reference(answer: str) -> str | None:
    """The final answer after '#### ' in a GSM8K solution."""
    match = _GSM8K_ANSWER.search(answer)
    return match.group(1).strip() if match else None


def user_prompt(instruction: str, input_text: str) -> str:
    """The SFT user turn: the instruction, and the input after a newline when there is one."""
    return f"{instruction}\n{input_text}" if input_text else instruction


def sft_messages(row: dict, response: str) -> list[dict]:
    """SFT-ready chat messages for a row and its final response."""
    return [
        {"role": "user", "content": user_prompt(row["instruction"], row["input"])},
        {"role": "assistant", "content": response},
    ]
