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
