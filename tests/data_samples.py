"""Paths of the small real data samples the tests read, shipped in tests/data/ (sources and licenses in its README)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"

GSM8K_TRAIN = DATA / "gsm8k" / "train.jsonl"  # the first 200 rows of GSM8K train
GSM8K_TEST = DATA / "gsm8k" / "test.jsonl"  # the first 10 rows of GSM8K test
ALPACA = DATA / "alpaca.json"  # 208 Alpaca rows: the first 200, then 8 held-out rows
ALPACA_HELD_OUT = 8  # the last rows of ALPACA, never among the first 200
DOLLY = DATA / "dolly.json"  # 40 Dolly rows
ARC_EASY = DATA / "arc_easy.jsonl"  # 20 ARC-Easy test items as {query, choices, gold}
MATH = DATA / "math.jsonl"  # 40 MATH test problems with boxed solutions, all seven subjects
OPENMATHINSTRUCT = DATA / "openmathinstruct2.json"  # 30 OpenMathInstruct-2 training solutions
CHAT = DATA / "chat"  # conversations made from the GSM8K and Alpaca samples, and hand-written edge cases
CHAT_MESSAGES = CHAT / "messages.jsonl"  # 14 two- and three-turn conversations in the `messages` schema
CHAT_SHAREGPT = CHAT / "sharegpt.jsonl"  # the same 14 conversations in the ShareGPT schema
CHAT_EDGE_CASES = CHAT / "edge_cases.jsonl"  # a tool-calling conversation, one exchange, and one row per bad case
CHAT_PARTS = CHAT / "parts.jsonl"  # content as a list of text parts, and an image part


def gsm8k_distill_command(rows: int, teacher: str, output: Path, **flags: object) -> list[str]:
    """`python -m sdd_data.cli distill` on the first `rows` GSM8K sample rows; `flags` as `--name value`
    (underscores become dashes)."""
    import sys

    options = [item for name, value in flags.items() for item in (f"--{name.replace('_', '-')}", str(value))]
    return [sys.executable, "-m", "sdd_data.cli", "distill", "--data", str(GSM8K_TRAIN), "--limit", str(rows),
            "--teacher", teacher, "--output", str(output), *options]  # fmt: skip


def write_jsonl(path: Path, rows: Iterable[dict]) -> Path:
    """Write `rows` to `path` as JSON lines; returns `path`."""
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path
