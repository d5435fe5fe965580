"""`sdd-data run`: several stages from one YAML file, in order.

The file holds a list of steps, each a mapping of one stage name to that stage's options (the same
keys as the stage's --config file):

    steps:
      - distill: {data: gsm8k.jsonl, preset: gsm8k, output: runs/gsm8k}
      - publish: {distilled: runs/gsm8k, output_dir: published/gsm8k}

Every step is checked before the first one runs (`sdd_data.pipeline_checks`): its options, the optional
packages it needs, and every file or folder it reads, which must exist now or be written by an earlier step,
with the right kind; so a typo, a missing file or a missing extra in the last step costs nothing.

A step whose output folder was made by an earlier run with the same options from inputs with the same
contents is skipped (the run records both there, in sdd_data_step.json: the options, and a digest of every
file or folder the stage reads), and stages that resume (distill) pick up where an interrupted pipeline
stopped.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sdd_data.artifacts import STEP_RECORD
from sdd_data.config import build_config, config_hash, config_to_flat_dict, leaf_defaults, read_yaml_config
from sdd_data.errors import SddError, SddProblems, one_line
from sdd_data.output_folder import write_json
from sdd_data.path_digest import path_digest
from sdd_data.pipeline_checks import input_paths, precheck
from sdd_data.registry import load_member
from sdd_data.stages import STAGES, Stage
from sdd_data.text_files import short_repr


@dataclass
class PipelineConfig:
    """What `sdd-data run` needs; every field is also a CLI flag."""

    pipeline: str
    """YAML file with a `steps` list; each step maps one stage name to its options."""
    dry_run: bool = False
    """Check every step's options and print the plan, without running anything."""


@dataclass
class PipelineStep:
    """A checked step: its stage and its config."""

    stage: Stage
    options: dict
    config: Any


def read_pipeline(path: str | Path) -> list[PipelineStep]:
    """The steps of a pipeline file, each with its config built and checked."""
    document = read_yaml_config(path)
    steps = document.get("steps")
    if set(document) != {"steps"} or not isinstance(steps, list) or not steps:
        raise SddError(f"pipeline file {path} must hold one key, `steps`, with a non-empty list of steps")
    checked, problems = [], []
    for number, step in enumerate(steps, start=1):
        if not isinstance(step, dict) or len(step) != 1:
            problems.append(f"step {number} must map one stage name to its options, got {short_repr(step)}")
            continue
        ((name, options),) = step.items()
        if options is not None and not isinstance(options, dict):
            problems.append(f"step {number} ({name}): options must be a mapping, got {short_repr(options)}")
            continue
        try:
            stage = STAGES.get(name)
            config = build_config(stage.config_class(), options or {})
        except SddError as error:
            problems.append(f"step {number} ({name}): {one_line(error)}")
            continue
        checked.append(PipelineStep(stage, options or {}, config))
    if not problems:
        problems = precheck([(step.stage, step.config) for step in checked])
    if problems:
        raise SddProblems([f"pipeline {problem}" for problem in problems])
    return checked


def run_pipeline(config: PipelineConfig) -> list[Any]:
    """Run every step of the pipeline in order; returns each stage's result."""
    steps = read_pipeline(config.pipeline)
    for number, step in enumerate(steps, start=1):
        options = " ".join(f"{name}={value}" for name, value in step.options.items())
        print(f"step {number}/{len(steps)}: {step.stage.name}  {options}")
    if config.dry_run:
        print(f"all {len(steps)} steps checked")
        return []
    results = []
    for number, step in enumerate(steps, start=1):
        started = time.perf_counter()
        output = step.stage.output_folder(step.config)
        if output is not None and _done_before(output, step):
            print(
                f"== step {number}/{len(steps)}: {step.stage.name} skipped: {output} holds its output "
                "for the same options"
            )
            results.append(None)
            continue
        print(f"== step {number}/{len(steps)}: {step.stage.name}")
        try:
            results.append(load_member(step.stage.function)(step.config))
        except SddError as error:
            raise SddError(f"pipeline step {number} ({step.stage.name}) failed: {error}") from None
        if output is not None and output.is_dir():
            write_json(output / STEP_RECORD, _step_record(step))
        print(f"== step {number}/{len(steps)}: {step.stage.name} done in {time.perf_counter() - started:.1f} s")
    return results


def _step_record(step: PipelineStep) -> dict:
    options = config_to_flat_dict(step.config)
    return {
        "stage": step.stage.name,
        "options": options,
        "hash": config_hash({"stage": step.stage.name, **options}),
        "inputs": input_digests(step),
    }


def input_digests(step: PipelineStep) -> dict[str, str]:
    """A digest of every existing file or folder a step reads (its stage's declared inputs), other than its own
    output."""
    return {f"{option}={path}": path_digest(path) for option, path in input_paths(step.stage, step.config)}


def _done_before(output: Path, step: PipelineStep) -> bool:
    """Whether `output` was written by this stage with these very options, from inputs that have not changed
    since (by an earlier `sdd-data run`; a record without input digests is taken as stale).

    An option the record lacks (added by a later version of the stage) matches when it holds its default,
    which is what the earlier run did without it; options that do not change a stage's output (its config's
    `output_neutral_options()`, where it has one) are not compared.
    """
    try:
        record = json.loads((output / STEP_RECORD).read_text())
    except (OSError, ValueError):
        return False
    recorded = record.get("options") if isinstance(record, dict) and record.get("stage") == step.stage.name else None
    if not isinstance(recorded, dict):
        return False
    current = json.loads(json.dumps(config_to_flat_dict(step.config), default=str))
    defaults = json.loads(json.dumps(leaf_defaults(step.stage.config_class()), default=str))
    if set(recorded) - set(current):
        return False
    neutral = step.config.output_neutral_options() if hasattr(step.config, "output_neutral_options") else set()
    same_options = all(
        recorded.get(key, defaults.get(key)) == value for key, value in current.items() if key not in neutral
    )
    return same_options and record.get("inputs") == input_digests(step)
