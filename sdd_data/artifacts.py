"""What every stage writes, by file name, and `detect(folder)`: which stage's output a folder is.

Stages write these names and readers find them here, so a folder is recognised one way everywhere.

| kind | marker | written by |
|---|---|---|
| `distill-run` | `run.json` | distill (finished once `stats.json` and `data/` exist) |
| `select-output` | `outcome.parquet` | select |
| `published` | `sdd_data.json` holding `configs` | publish (a local folder in the Hub's layout) |
| `eval-results` | `results.json` | eval |
| `model` | `config.json` | prune, train, merge, or any transformers checkpoint |

A model that `publish --model` saved is still a `model` (every stage loads it like any checkpoint); its
`sdd_data.json` holds `model`, which `is_published_model` checks.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

DATA_DIR = "data"
"""A `datasets` folder (`save_to_disk`) in distill and select outputs; Parquet shards per config when published."""
PROVENANCE_FILE = "sdd_data.json"
CARD_FILE = "README.md"

RUN_MANIFEST = "run.json"
SHARDS_DIR = "shards"
DISTILLED_PARQUET = "distilled.parquet"
DROPPED_PARQUET = "dropped.parquet"
STATS_FILE = "stats.json"

SELECT_OUTCOME = "outcome.parquet"
SELECT_REPORT = "report.json"
SELECT_PLOT = "clusters.png"

MODEL_CONFIG = "config.json"
PRUNE_RECORD = "sdd_data_prune.json"
"""Inside a pruned checkpoint: removed blocks, scores and calibration."""
TRAIN_RECORD = "sdd_data_train.json"
MERGE_RECIPE_COPY = "merge_config.yaml"

STEP_RECORD = "sdd_data_step.json"
"""Written by `sdd-data run` into a step's output folder: the stage and options that made it."""

EVAL_RESULTS = "results.json"
EVAL_PLOT = "results.png"

DISTILL_RUN = "distill-run"
SELECT_OUTPUT = "select-output"
PUBLISHED = "published"
EVAL_RESULTS_KIND = "eval-results"
MODEL = "model"
DATASET_KINDS = (DISTILL_RUN, SELECT_OUTPUT, PUBLISHED)
"""Outputs that hold a dataset: every stage that reads rows takes any of them."""
WRITTEN_BY = {
    DISTILL_RUN: "distill",
    SELECT_OUTPUT: "select",
    PUBLISHED: "publish",
    EVAL_RESULTS_KIND: "eval",
    MODEL: "prune, train or merge",
}
"""The stage that writes each kind of output."""


@dataclass(frozen=True)
class StageOutput:
    """A folder some stage wrote: its kind and whether it is complete."""

    folder: Path
    kind: str
    finished: bool


def _is_published(folder: Path) -> bool:
    try:
        provenance = json.loads((folder / PROVENANCE_FILE).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(provenance, dict) and "configs" in provenance


def is_published_model(folder: str | Path) -> bool:
    """Whether `folder` is a model saved by `publish --model` (its sdd_data.json holds `model`)."""
    try:
        provenance = json.loads((Path(folder) / PROVENANCE_FILE).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(provenance, dict) and isinstance(provenance.get("model"), dict)


def detect(folder: str | Path) -> StageOutput | None:
    """Which stage output `folder` is, or None for anything else (a file, a data file's folder, nothing)."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        return None
    if (folder / RUN_MANIFEST).is_file():
        finished = (folder / STATS_FILE).is_file() and (folder / DATA_DIR).is_dir()
        return StageOutput(folder, DISTILL_RUN, finished)
    if (folder / SELECT_OUTCOME).is_file():
        return StageOutput(folder, SELECT_OUTPUT, (folder / DATA_DIR).is_dir() and (folder / PROVENANCE_FILE).is_file())
    if (folder / PROVENANCE_FILE).is_file() and _is_published(folder):
        return StageOutput(folder, PUBLISHED, True)
    if (folder / EVAL_RESULTS).is_file():
        return StageOutput(folder, EVAL_RESULTS_KIND, True)
    if (folder / MODEL_CONFIG).is_file():
        return StageOutput(folder, MODEL, True)
    return None
