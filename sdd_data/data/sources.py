"""Load instruction data from files, saved datasets or the Hub into canonical rows."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from sdd_data.data.conversations import ConversationError, from_messages, from_sharegpt, is_single_exchange
from sdd_data.data.file_rows import read_file_rows
from sdd_data.data.records import (
    CONVERSATION_PRESETS,
    PRESETS,
    TASKS,
    Preset,
    detect_preset,
    gsm8k_reference,
    row_id,
)
from sdd_data.errors import SddError, first_line
from sdd_data.hub import ensure_hub_reachable, looks_like_path

FILE_FORMATS = {".json": "json", ".jsonl": "json", ".parquet": "parquet", ".csv": "csv"}
EXAMPLES_DIR = Path(__file__).parent / "examples"
NAMED_EXAMPLES = {"example": EXAMPLES_DIR / "example.jsonl"}
MAPPABLE = ("instruction", "input", "response", "reference_answer", "id", "task")
OPTIONAL_FIELDS = ("input", "reference_answer")
"""Canonical fields a row may go without: a preset naming a column for them accepts a file that lacks it."""


@dataclass
class SourceSpec:
    """Which data to load and how its columns map onto canonical rows."""

    data: str
    """A local .json/.jsonl/.parquet/.csv file, a saved `datasets` folder, a Hub dataset id, or `example`."""
    split: str = "train"
    """Split to read from a saved DatasetDict or a Hub dataset."""
    preset: str | None = None
    """Column preset (alpaca, dolly, gsm8k, openmathinstruct, messages, sharegpt); detected from the columns when
    unset."""
    columns: dict = field(default_factory=dict)
    """Explicit column mapping, e.g. instruction=prompt,response=completion (overrides the preset)."""
    task: str | None = None
    """Task of every row (math, mc, code, free); otherwise the preset's, or a `task` column."""
    limit: int | None = None
    """Read only the first N rows."""


@dataclass
class LoadedSource:
    """Canonical rows, the rows that could not be used (with a reason), and where they came from."""

    rows: list[dict]
    invalid: list[dict]
    name: str
    fingerprint: str
    preset: str | None
    source_columns: list[str]
    turns_in: int | None = None
    """Turns (chat messages) in the source's conversations, counted as read; None for single-turn presets."""


def _file_fingerprint(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_raw_dataset(spec: SourceSpec):
    """The source's rows (a file's as written, `FileRows`; else a `datasets.Dataset`), its display name and a
    content fingerprint."""
    import datasets

    target = NAMED_EXAMPLES.get(spec.data, Path(spec.data).expanduser())
    if target.is_file():
        kind = FILE_FORMATS.get(target.suffix.lower())
        if kind is None:
            raise SddError(f"{target}: unsupported file type {target.suffix!r}; use one of {', '.join(FILE_FORMATS)}")
        if target.stat().st_size == 0:
            raise SddError(f"{target} is empty")
        return read_file_rows(target, kind), target.name, _file_fingerprint(target)
    if target.is_dir():
        try:
            loaded = datasets.load_from_disk(str(target))
        except FileNotFoundError:
            raise SddError(f"{target} is a folder but not a saved `datasets` dataset") from None
        if isinstance(loaded, datasets.DatasetDict):
            if spec.split not in loaded:
                raise SddError(f"{target} has no split {spec.split!r}; available: {', '.join(loaded)}")
            loaded = loaded[spec.split]
        return loaded, target.name, loaded._fingerprint
    if looks_like_path(spec.data, frozenset(FILE_FORMATS)):
        raise SddError(f"data path {spec.data} does not exist")
    return _load_hub(spec)


def _load_hub(spec: SourceSpec):
    import datasets

    ensure_hub_reachable(f"dataset {spec.data!r}")
    try:
        dataset = datasets.load_dataset(spec.data, split=spec.split)
    except (ConnectionError, OSError) as error:
        raise SddError(f"Hub dataset {spec.data!r} is unreachable or does not exist ({type(error).__name__})") from None
    except ValueError as error:
        raise SddError(f"Hub dataset {spec.data!r}: {first_line(error)}") from None
    return dataset, spec.data, dataset._fingerprint


def resolve_columns(spec: SourceSpec, available: list[str]) -> tuple[Preset | None, dict[str, str | None]]:
    """The preset in use and the final column for each canonical field."""
    if spec.preset is not None and spec.preset not in PRESETS:
        raise SddError(f"unknown preset {spec.preset!r}; known: {', '.join(PRESETS)}")
    preset = PRESETS.get(spec.preset) if spec.preset else detect_preset(available)
    unknown_keys = sorted(set(spec.columns) - set(MAPPABLE))
    if unknown_keys:
        raise SddError(f"cannot map {', '.join(unknown_keys)}: mappable fields are {', '.join(MAPPABLE)}")
    mapping: dict[str, str | None] = dict(preset.columns) if preset else {}
    for optional in OPTIONAL_FIELDS:  # a preset's optional column may be missing (Alpaca files without `input`)
        if mapping.get(optional) is not None and mapping[optional] not in available:
            mapping[optional] = None
    for canonical in MAPPABLE:  # canonical column names are used as they are when present
        if mapping.get(canonical) is None and canonical in available:
            mapping[canonical] = canonical
    mapping.update(spec.columns)
    for canonical in ("instruction", "response"):
        if not mapping.get(canonical):
            raise SddError(
                f"no column for {canonical!r}: pass a preset or --columns {canonical}=<column>; "
                f"available columns: {', '.join(available)}"
            )
    for canonical, column in mapping.items():
        if column is not None and column not in available:
            raise SddError(f"column {column!r} (for {canonical}) not found; available columns: {', '.join(available)}")
    return preset, mapping


def _conversation_fields(preset: Preset, value: object) -> tuple[dict, str | None]:
    """The row fields of a chat conversation, and the reason it cannot be used (or None).

    A conversation of one user turn and its plain answer is a single-turn row; any other keeps every turn in
    `conversation`, with its first exchange as the row's instruction and response.
    """
    reader = from_sharegpt if preset.name == "sharegpt" else from_messages
    try:
        turns = reader(value)
    except ConversationError as error:
        stored = json.dumps(value, default=str, ensure_ascii=False)  # kept as read, whatever its shape
        return {"instruction": None, "response": None, "conversation": stored}, error.reason
    if is_single_exchange(turns):
        return {"instruction": turns[0]["content"], "response": turns[1]["content"], "conversation": None}, None
    first_user = next(position for position, turn in enumerate(turns) if turn["role"] == "user")
    answer = turns[first_user + 1] if first_user + 1 < len(turns) else None
    return {
        "instruction": turns[first_user]["content"],
        "response": answer["content"] if answer and answer["role"] == "assistant" else "",
        "conversation": turns,
    }, None


def _invalid_field(row: dict) -> str | None:
    if row["conversation"] is not None:
        return None if row["task"] in TASKS else "unknown_task"
    for name in ("instruction", "response"):
        value = row[name]
        if not isinstance(value, str):
            return f"{name}_not_string" if value is not None else f"{name}_missing"
        if not value.strip():
            return f"{name}_empty"
    if not isinstance(row["input"], str):
        return "input_not_string"
    if row["task"] not in TASKS:
        return "unknown_task"
    return None


def load_rows(spec: SourceSpec, strict: bool = False) -> LoadedSource:
    """Load a source into canonical rows; rows with empty or non-string fields are set aside with a reason."""
    if spec.task is not None and spec.task not in TASKS:
        raise SddError(f"unknown task {spec.task!r}; known: {', '.join(TASKS)}")
    if spec.limit is not None and spec.limit <= 0:
        raise SddError(f"limit must be positive, got {spec.limit}")
    dataset, name, fingerprint = load_raw_dataset(spec)
    if len(dataset) == 0:
        raise SddError(f"{name} has no rows")
    if spec.limit is not None:
        dataset = dataset.select(range(min(spec.limit, len(dataset))))
    preset, mapping = resolve_columns(spec, dataset.column_names)
    used = {column for column in mapping.values() if column}
    default_task = spec.task or (preset.task if preset else "free")
    rows, invalid, ids = [], [], []
    conversation_column = preset.instruction if preset and preset.name in CONVERSATION_PRESETS else None
    turns_in = 0 if conversation_column and mapping["instruction"] == conversation_column else None
    for index, raw in enumerate(dataset):
        if turns_in is not None:
            turns_in += len(raw[conversation_column]) if isinstance(raw[conversation_column], list) else 0
        row, problem = _canonical_row(raw, index, name, mapping, preset, default_task, used, spec.task is not None)
        ids.append(row["id"])
        problem = problem or _invalid_field(row)
        if problem is None:
            rows.append(row)
            continue
        if strict:
            raise SddError(f"{name} row {index} (id {row['id']}): {problem.replace('_', ' ')}")
        invalid.append({**_stringified(row), "reason": f"invalid_row:{problem}"})
    if not rows:
        raise SddError(f"{name}: none of its {len(dataset)} rows is usable (first problem: {invalid[0]['reason']})")
    check_unique_ids(name, ids)
    return LoadedSource(
        rows, invalid, name, fingerprint, preset.name if preset else None, dataset.column_names, turns_in
    )


def check_unique_ids(name: str, ids: list[str]) -> None:
    """Refuse a source in which two rows share an id, naming the ids and their rows (before any model runs)."""
    seen: dict[str, int] = {}
    repeated: dict[str, list[int]] = {}
    for index, identifier in enumerate(ids):
        if identifier in seen:
            repeated.setdefault(identifier, [seen[identifier]]).append(index)
        else:
            seen[identifier] = index
    if repeated:
        shown = "; ".join(f"{key!r} (rows {', '.join(map(str, where))})" for key, where in list(repeated.items())[:5])
        more = f" and {len(repeated) - 5} more" if len(repeated) > 5 else ""
        raise SddError(f"{name}: {len(repeated)} row id(s) are not unique: {shown}{more}; every row needs its own id")


def _canonical_row(
    raw: dict,
    index: int,
    name: str,
    mapping: dict,
    preset: Preset | None,
    default_task: str,
    used: set,
    task_forced: bool,
) -> tuple[dict, str | None]:
    """A source row as a canonical row, and the reason a conversation in it cannot be used (or None)."""
    problem = None
    if preset is not None and preset.name in CONVERSATION_PRESETS and mapping["instruction"] == preset.instruction:
        fields, problem = _conversation_fields(preset, raw[preset.instruction])
        instruction, response, conversation = fields["instruction"], fields["response"], fields["conversation"]
    else:
        instruction, response, conversation = raw[mapping["instruction"]], raw[mapping["response"]], None
    input_text = raw[mapping["input"]] if mapping.get("input") else ""
    reference = raw[mapping["reference_answer"]] if mapping.get("reference_answer") else None
    if reference is None and preset is not None and preset.name == "gsm8k" and isinstance(response, str):
        reference = gsm8k_reference(response)
    task = default_task if task_forced or not mapping.get("task") else (raw[mapping["task"]] or default_task)
    identifier = raw[mapping["id"]] if mapping.get("id") else None
    meta = {key: value for key, value in raw.items() if key not in used}
    row = {
        "id": str(identifier) if identifier is not None else row_id(name, index),
        "source": name,
        "instruction": instruction,
        "input": "" if input_text is None else input_text,
        "response": response,
        "reference_answer": None if reference is None else str(reference),
        "task": task,
        "meta": json.dumps(meta, default=str, ensure_ascii=False) if meta else "",
        "conversation": conversation,
    }
    return row, problem


def _stringified(row: dict) -> dict:
    """A row whose fields are all strings (or None), so invalid rows can be stored next to valid ones."""
    return {
        key: value if value is None or isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
        for key, value in row.items()
    }
