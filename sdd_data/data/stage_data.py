"""The rows of any stage output that holds a dataset: a distill run, a select output or a published folder.

Train, select and publish read their input through `read_stage_dataset`, so each takes all three.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sdd_data import artifacts
from sdd_data.errors import SddError, first_line

SPLITS = ("train", "dropped")
"""`train` holds the kept rows; `dropped` the rows the filter or the source set aside (distill and publish)."""


@dataclass
class StageDataset:
    """One split of a stage output's rows, with what the folder records about how they were made."""

    kind: str
    """artifacts.DISTILL_RUN, SELECT_OUTPUT or PUBLISHED."""
    folder: Path
    table: Any
    """A pyarrow Table."""
    provenance: dict
    """A distill run's stats.json, a select output's sdd_data.json, or a published config's provenance."""
    config_name: str | None = None
    """The config read from a published folder."""


def read_json_object(path: Path, holder: str = "the folder") -> dict:
    """A JSON object from a record file in a stage output or checkpoint (`holder`); one line naming the file
    when it is damaged."""
    try:
        values = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise SddError(f"{path} is not readable JSON ({first_line(error)}); {holder} is damaged") from None
    if not isinstance(values, dict):
        raise SddError(f"{path} must hold a JSON object; {holder} is damaged")
    return values


def _read_parquet(paths: list[Path]) -> Any:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pa.concat_tables([pq.read_table(path) for path in paths])
    except (OSError, ValueError, pa.ArrowException) as error:
        raise SddError(f"{paths[0].parent}: cannot read its Parquet data ({first_line(error)})") from None


def _read_saved_dataset(folder: Path) -> Any:
    import datasets

    try:
        return datasets.load_from_disk(str(folder)).data.table
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:  # damaged files or their metadata
        raise SddError(f"{folder}: cannot read the saved dataset ({first_line(error)})") from None


def published_config(folder: Path, config_name: str | None) -> tuple[str, dict]:
    """The config to read from a published folder (the only one, or `config_name`) and its provenance."""
    configs = read_json_object(folder / artifacts.PROVENANCE_FILE).get("configs") or {}
    if not isinstance(configs, dict) or not all(isinstance(value, dict) for value in configs.values()):
        raise SddError(
            f"{folder / artifacts.PROVENANCE_FILE}: `configs` must map names to objects; the folder is damaged"
        )
    names = sorted(configs)
    if config_name is None:
        if len(names) != 1:
            raise SddError(f"{folder} holds configs {', '.join(names)}: choose one with --data-config")
        config_name = names[0]
    elif config_name not in configs:
        raise SddError(f"{folder} has no config {config_name!r}; it holds {', '.join(names)}")
    return config_name, configs[config_name]


def read_stage_dataset(folder: str | Path, split: str = "train", config_name: str | None = None) -> StageDataset:
    """One split of the rows of a distill run, select output or published folder."""
    output = artifacts.detect(folder)
    if output is None or output.kind not in artifacts.DATASET_KINDS:
        raise SddError(f"{folder} is not a distill run, a select output or a published folder")
    if not output.finished:
        stage = artifacts.WRITTEN_BY[output.kind]
        raise SddError(f"{folder} is an unfinished {stage} output; rerun `sdd-data {stage}` to finish it")
    if split not in SPLITS:
        raise SddError(f"unknown split {split!r}; stage outputs hold {', '.join(SPLITS)}")
    path = output.folder
    if output.kind == artifacts.DISTILL_RUN:
        stats = read_json_object(path / artifacts.STATS_FILE)
        name = artifacts.DISTILLED_PARQUET if split == "train" else artifacts.DROPPED_PARQUET
        return StageDataset(output.kind, path, _read_parquet([path / name]), stats)
    if output.kind == artifacts.SELECT_OUTPUT:
        if split != "train":
            raise SddError(f"{folder} is a select output: it holds the selected rows only (split train)")
        provenance = read_json_object(path / artifacts.PROVENANCE_FILE)
        return StageDataset(output.kind, path, _read_saved_dataset(path / artifacts.DATA_DIR), provenance)
    config_name, provenance = published_config(path, config_name)
    files = sorted((path / artifacts.DATA_DIR / config_name).glob(f"{split}-*.parquet"))
    if not files:
        raise SddError(f"{folder}: config {config_name} has no {split!r} split")
    return StageDataset(output.kind, path, _read_parquet(files), provenance, config_name)
