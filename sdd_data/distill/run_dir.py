"""A resumable run folder: a manifest naming the run, and shards written atomically.

A shard file appears whole or not at all (written to a temporary name, flushed, then renamed), so a
run killed at any moment, even with SIGKILL, leaves only complete shards behind; the rerun skips them.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from sdd_data.artifacts import (
    DATA_DIR,
    DISTILLED_PARQUET,
    DROPPED_PARQUET,
    RUN_MANIFEST,
    SHARDS_DIR,
    STATS_FILE,
)
from sdd_data.errors import SddError
from sdd_data.output_folder import write_atomically, write_json

# Everything a run writes; --overwrite removes exactly these, never anything else in the folder.
RUN_OUTPUTS = (RUN_MANIFEST, SHARDS_DIR, DATA_DIR, DISTILLED_PARQUET, DROPPED_PARQUET, STATS_FILE)


class RunDir:
    """The output folder of one distill run."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.shard_dir = self.path / SHARDS_DIR

    def open(self, identity: dict, overwrite: bool) -> None:
        """Start or resume the run named by `identity`; refuse to mix it with another run's results."""
        manifest = self.path / RUN_MANIFEST
        if overwrite:
            self.clear()
        elif manifest.exists():
            previous = json.loads(manifest.read_text())
            if previous.get("identity") != identity:
                changed = sorted(_changed_keys(previous.get("identity", {}), identity))
                raise SddError(
                    f"{self.path} holds results of another run (differs in: {', '.join(changed) or 'format'}); "
                    "use --overwrite to start over or choose another --output"
                )
        elif self.path.exists() and any(self.path.iterdir()):
            raise SddError(f"{self.path} is not empty and holds no sdd-data run; choose another --output")
        self.shard_dir.mkdir(parents=True, exist_ok=True)
        self.remove_leftovers()
        if not manifest.exists():
            write_json(manifest, {"identity": identity})

    def clear(self) -> None:
        """Remove what a previous run wrote here (and nothing else)."""
        for name in RUN_OUTPUTS:
            target = self.path / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()

    def remove_leftovers(self) -> None:
        """Delete temporary files that a killed run left half-written."""
        for leftover in [*self.path.glob(".*.tmp-*"), *self.shard_dir.glob(".*.tmp-*")]:
            shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()

    def shard_path(self, index: int) -> Path:
        return self.shard_dir / f"shard-{index:05d}.parquet"

    def completed_shards(self) -> set[int]:
        """Indices of the shards already written."""
        return {int(path.stem.split("-")[1]) for path in self.shard_dir.glob("shard-*.parquet")}

    def write_shard(self, index: int, table: pa.Table) -> None:
        """Write one shard atomically."""
        write_atomically(self.shard_path(index), lambda target: pq.write_table(table, target))

    def read_shards(self, count: int) -> pa.Table:
        """All shards, in order, as one table; a missing shard is an error."""
        missing = [index for index in range(count) if not self.shard_path(index).exists()]
        if missing:
            raise SddError(f"{self.path}: shard(s) {missing[:5]} missing; rerun the same command to finish them")
        return pa.concat_tables([pq.read_table(self.shard_path(index)) for index in range(count)])


def _changed_keys(old: dict, new: dict) -> set[str]:
    old_flat, new_flat = _flatten(old), _flatten(new)
    return {
        key for key in old_flat.keys() | new_flat.keys() if key != "hash" and old_flat.get(key) != new_flat.get(key)
    }


def _flatten(values: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in values.items():
        if isinstance(value, dict) and key != "columns":
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat
