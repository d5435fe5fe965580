"""The experiment's data: the training mix, the evaluation items and the held-out prompts, written once.

Sources are local files (the copies in ../shared/data by default) or Hub ids, read through the
project's own sources. Evaluation items are converted to one multiple-choice form, `{query, choices,
gold}` scored with a single space between query and choice, so every task runs through `mc:<file>`
and the same files feed decontamination and the lm-eval cross-check.
"""

from __future__ import annotations

import bz2
import csv
import json
import random
from dataclasses import dataclass
from pathlib import Path

from presets import Preset

from sdd_data.data.sources import SourceSpec, load_rows

TRAIN_SOURCES = {"alpaca": "alpaca/alpaca_2k.json", "dolly": "dolly/dolly_2k.json", "gsm8k": "gsm8k/train.jsonl"}
"""Source name -> its file under the data folder (columns are recognised by the sources' presets)."""
GENERAL_SOURCES = ("alpaca", "dolly")
EVAL_FILES = {
    "arc_easy": "eval/arc_easy/llmfoundry_arc_easy.jsonl",
    "arc_challenge": "eval/arc_challenge/llmfoundry_arc_challenge.jsonl",
    "piqa": "eval/piqa/llmfoundry_piqa.jsonl",
    "hellaswag": "eval/hellaswag/hellaswag_val_full.txt.bz2",
    "mmlu": "eval/mmlu/test",
}
MC_DELIMITER = " "
"""Between every converted query and its choices (an `Answer:` cue is part of the query where the task has one)."""
ANSWER_CUE = "\nAnswer:"


@dataclass
class PreparedData:
    """Where the prepared files are."""

    train: Path
    """Canonical rows of the whole training mix (general and math)."""
    eval_files: dict[str, Path]
    heldout_prompts: Path
    counts: dict[str, int]
    dev_files: dict[str, Path]
    """Items of each task disjoint from the reported ones, on which learning rates are chosen (none without a
    `learning_rate_grid`)."""


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    temporary.replace(path)
    return path


def _source(data_dir: Path, name: str, hub_ids: dict[str, str]) -> str:
    return hub_ids.get(name) or str(data_dir / TRAIN_SOURCES[name])


def _canonical(rows: list[dict], source: str) -> list[dict]:
    keep = ("id", "instruction", "input", "response", "reference_answer", "task")
    return [{**{key: row[key] for key in keep}, "source": source} for row in rows]


def training_rows(preset: Preset, data_dir: Path, hub_ids: dict[str, str]) -> tuple[list[dict], list[dict]]:
    """The training mix (the first rows of each source) and the held-out prompts (the last general rows)."""
    train, heldout = [], []
    per_source_heldout = -(-preset.heldout_prompts // len(GENERAL_SOURCES))
    for name, count in preset.train_mix.items():
        data = _source(data_dir, name, hub_ids)
        rows = load_rows(SourceSpec(data=data)).rows
        reserved = per_source_heldout if name in GENERAL_SOURCES else 0
        if count + reserved > len(rows):
            raise SystemExit(f"{data} has {len(rows)} rows: too few for {count} training and {reserved} held-out rows")
        train += _canonical(rows[:count], name)
        if reserved:
            heldout += _canonical(rows[len(rows) - reserved :], name)
    return train, heldout[: preset.heldout_prompts]


def _llmfoundry_items(path: Path) -> list[dict]:
    items = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            items.append({"query": row["query"] + ANSWER_CUE, "choices": row["choices"], "gold": row["gold"]})
    return items


def _hellaswag_items(path: Path) -> list[dict]:
    lines = bz2.open(path, "rt", encoding="utf-8").read().splitlines()
    items = []
    for start in range(0, len(lines) - 5, 6):
        context, gold, *endings = lines[start : start + 6]
        items.append({"query": context.strip(), "choices": [ending.strip() for ending in endings], "gold": int(gold)})
    return items


def _mmlu_items(folder: Path) -> list[dict]:
    items = []
    for path in sorted(folder.glob("*.csv")):
        subject = path.stem.removesuffix("_test").replace("_", " ")
        with path.open(encoding="utf-8", newline="") as handle:
            for row in csv.DictReader(handle):
                options = "".join(f"\n{letter}. {row[f'choice{index}']}" for index, letter in enumerate("ABCD"))
                query = f"The following is a multiple choice question about {subject}.\n\n{row['question']}{options}"
                items.append({"query": query + ANSWER_CUE, "choices": list("ABCD"), "gold": int(row["answer"])})
    return items


READERS = {"arc_easy": _llmfoundry_items, "arc_challenge": _llmfoundry_items, "piqa": _llmfoundry_items,
           "hellaswag": _hellaswag_items, "mmlu": _mmlu_items}  # fmt: skip


def _sample(size: int, count: int, seed: int = 0) -> list[int]:
    """A seeded sample of `count` of `size` positions (all of them when there are fewer), in order."""
    return list(range(size)) if count >= size else sorted(random.Random(seed).sample(range(size), count))


def eval_items(task: str, data_dir: Path, count: int, seed: int = 0) -> list[dict]:
    """A seeded sample of `count` items of a task (the whole set when it is smaller), in the set's order."""
    items = READERS[task](data_dir / EVAL_FILES[task])
    return [items[index] for index in _sample(len(items), count, seed)]


def dev_items(task: str, data_dir: Path, reported: int, count: int) -> list[dict]:
    """`count` items of a task that `eval_items(task, data_dir, reported)` does not hold (a seeded sample of the
    rest), for choosing learning rates without looking at the reported items."""
    items = READERS[task](data_dir / EVAL_FILES[task])
    taken = set(_sample(len(items), reported))
    rest = [index for index in range(len(items)) if index not in taken]
    if not rest:
        raise SystemExit(f"{task}: every item is reported, none is left for a dev split")
    return [items[rest[position]] for position in _sample(len(rest), count, seed=1)]


def prepare_data(preset: Preset, data_dir: Path, work: Path, hub_ids: dict[str, str]) -> PreparedData:
    """Write the training mix, the evaluation items and the held-out prompts under `work/data` (once)."""
    folder = work / "data"
    train_path, heldout_path = folder / "train.jsonl", folder / "heldout_prompts.jsonl"
    eval_paths = {task: folder / f"eval_{task}.jsonl" for task in preset.eval_tasks}
    dev_paths = {task: folder / f"dev_{task}.jsonl" for task in preset.eval_tasks} if preset.learning_rate_grid else {}
    if not (train_path.is_file() and heldout_path.is_file() and all(path.is_file() for path in eval_paths.values())):
        train, heldout = training_rows(preset, data_dir, hub_ids)
        write_jsonl(train_path, train)
        write_jsonl(heldout_path, heldout)
        for task, path in eval_paths.items():
            write_jsonl(path, eval_items(task, data_dir, preset.eval_items))
    for task, path in dev_paths.items():
        if not path.is_file():
            write_jsonl(path, dev_items(task, data_dir, preset.eval_items, preset.dev_items))
    counts = {path.stem: sum(1 for line in path.open(encoding="utf-8") if line.strip())
              for path in [train_path, heldout_path, *eval_paths.values(), *dev_paths.values()]}  # fmt: skip
    return PreparedData(train_path, eval_paths, heldout_path, counts, dev_paths)
