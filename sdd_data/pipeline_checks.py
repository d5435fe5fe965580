"""`sdd-data run`'s precheck: every step's options and inputs, checked before the first step runs.

Each step is checked in order, as its stage would check it: its options parse (the stage's own
`check_options`), its optional packages are installed, and every file or folder an option names either
exists now with the right kind, or is the output of an earlier step of the right kind. All problems are
reported at once, one line each, and nothing runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sdd_data import artifacts
from sdd_data.config import config_to_flat_dict
from sdd_data.errors import SddError
from sdd_data.hub import looks_like_path
from sdd_data.registry import load_member
from sdd_data.stages import PathInput, Stage, missing_message

DATA_SUFFIXES = frozenset({".json", ".jsonl", ".parquet", ".csv"})
OUTPUT_KINDS = {
    "distill": artifacts.DISTILL_RUN,
    "select": artifacts.SELECT_OUTPUT,
    "prune": artifacts.MODEL,
    "train": artifacts.MODEL,
    "merge": artifacts.MODEL,
    "eval": artifacts.EVAL_RESULTS_KIND,
}
"""The kind of output each stage writes (publish: a published folder, or a model with --model)."""


@dataclass(frozen=True)
class Produced:
    """An output an earlier step writes: the step's number and stage, and the kind of output it is."""

    step: int
    stage: str
    kind: str


def _resolved(text: str) -> Path:
    return Path(text).expanduser().resolve()


def output_kind(stage: Stage, config: Any) -> str | None:
    """The kind of output a step writes into its output folder (None when it writes none)."""
    if stage.name == "publish":
        return artifacts.MODEL if getattr(config, "model", None) else artifacts.PUBLISHED
    return OUTPUT_KINDS.get(stage.name)


def _names(role: str, value: str) -> Iterator[str]:
    """The paths (or names) an option value gives: one, or the items of a list option."""
    if role == "files":
        yield from (item.strip() for item in value.split(",") if item.strip())
    elif role == "models":
        for item in value.split(","):
            yield item.partition("=")[2].strip() if "=" in item else item.strip()
    elif role == "tasks":
        for item in value.split(","):
            kind, _, argument = item.strip().partition(":")
            if argument and kind != "lm-eval" and looks_like_path(argument, DATA_SUFFIXES):
                yield argument
    else:
        yield value


def _kind_problem(entry: PathInput, name: str, kind: str | None, where: str) -> str | None:
    """Why the input `entry` cannot be `name`, of `kind` (a stage output kind, `file`, `folder`)."""
    role = entry.role
    if role in ("model", "models"):
        return None if kind == artifacts.MODEL else f"{name} {where} is not a model checkpoint (no config.json)"
    if role == "stage-output":
        taken = load_member(entry.kinds) if entry.kinds else ()
        return None if kind in taken else f"{name} {where} is not a stage output"
    if role == "dataset":
        return None if kind in (*artifacts.DATASET_KINDS, "file", "folder") else f"{name} {where} holds no rows"
    if role == "eval-output":
        return None if kind == artifacts.EVAL_RESULTS_KIND else f"{name} {where} is not an eval output"
    if role == "source" and kind in artifacts.DATASET_KINDS:
        return f"{name} {where} is a {kind} output: distill reads a data file, a saved dataset or a Hub id"
    if role in ("file", "files", "template", "tasks") and kind != "file":
        return f"{name} {where} is not a file"
    return None


def _existing_kind(path: Path) -> str:
    if path.is_file():
        return "file"
    found = artifacts.detect(path)
    return found.kind if found else "folder"


def named_inputs(inputs: tuple[PathInput, ...], config: Any) -> Iterator[tuple[PathInput, str]]:
    """Each declared input option with each file, folder or name its value gives (a list option gives several)."""
    values = config_to_flat_dict(config)
    for entry in inputs:
        value = values.get(entry.option)
        if isinstance(value, str) and value.strip():
            for name in _names(entry.role, value):
                yield entry, name


def input_paths(stage: Stage, config: Any) -> Iterator[tuple[str, Path]]:
    """(option, path) of every existing file or folder a step reads, other than its own output folder."""
    output = stage.output_folder(config)
    output = _resolved(str(output)) if output is not None else None
    for entry, name in named_inputs(stage.inputs, config):
        path = _resolved(name)
        if path.exists() and not (output is not None and (path == output or output in path.parents)):
            yield entry.option, path


def input_problems(inputs: tuple[PathInput, ...], config: Any, produced: dict[Path, Produced]) -> list[str]:
    """What is wrong with the files and folders a step's options name, given the outputs of earlier steps."""
    problems = []
    for entry, name in named_inputs(inputs, config):
        if entry.role == "template" and not Path(name).suffix and not Path(name).is_file():
            continue  # a registered template; the stage's own check knows the names
        path = _resolved(name)
        if path in produced:
            made = produced[path]
            problem = _kind_problem(entry, name, made.kind, f"(written by step {made.step}, {made.stage})")
        elif path.exists():
            problem = _kind_problem(entry, name, _existing_kind(path), "")
        elif entry.role in ("file", "files", "tasks") or looks_like_path(name, DATA_SUFFIXES):
            problem = f"{name} does not exist, and no earlier step writes it"
        else:
            problem = None  # a Hub id or a named model (`smollm2`): checked when the step runs
        if problem:
            problems.append(f"--{entry.option.replace('_', '-')} {' '.join(problem.split())}")
    return problems


def step_problems(stage: Stage, config: Any, produced: dict[Path, Produced]) -> list[str]:
    """Every problem of one step: its options (the stage's own check), its inputs, its missing packages."""
    problems = []
    missing = stage.missing(config)
    if missing:
        problems.append(missing_message(stage, missing))
    problems += input_problems(stage.inputs, config, produced)
    if stage.check and not problems:
        try:
            load_member(stage.check)(config)
        except SddError as error:
            problems.append(" ".join(str(error).split()))
    return problems


def precheck(steps: list[tuple[Stage, Any]]) -> list[str]:
    """The problems of every step, each `step N (stage): problem`, in order; empty when all can run."""
    produced: dict[Path, Produced] = {}
    problems = []
    for number, (stage, config) in enumerate(steps, start=1):
        problems += [f"step {number} ({stage.name}): {problem}" for problem in step_problems(stage, config, produced)]
        output = stage.output_folder(config)
        kind = output_kind(stage, config)
        if output is not None and kind is not None:
            produced[_resolved(str(output))] = Produced(number, stage.name, kind)
    return problems
