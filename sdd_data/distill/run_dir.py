"""A resumable run folder: a manifest naming the run, and shards written atomically.

A shard file appears whole or not at all (written to a temporary name, flushed, then renamed), so a
run killed at any moment, even with SIGKILL, leaves only complete shards behind; the rerun skips them.
The manifest is written before anything else, and the stats file, written last, marks a finished run:
the final phase removes it before it rewrites anything, so a run killed there never looks finished.
A shard that cannot be read back whole (damaged on disk, or written by another version) is done again.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import sys
from collections.abc import Callable, Iterator
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
from sdd_data.errors import SddError, first_line
from sdd_data.output_folder import write_atomically, write_json

# Everything a run writes; --overwrite removes exactly these (the finished marker first, the manifest last).
RUN_OUTPUTS = (STATS_FILE, DATA_DIR, DISTILLED_PARQUET, DROPPED_PARQUET, SHARDS_DIR, RUN_MANIFEST)
FULL_DISK_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS}
PERMISSION_ERRORS = {errno.EACCES, errno.EPERM}
LEFTOVER_PATTERN = ".*.tmp-*"
"""Temporary names of half-written files and folders (`write_atomically`, the `data/` staging folder)."""


class RunDir:
    """The output folder of one distill run."""

    def __init__(self, path: str | Path, after_shard: Callable[[Path], None] | None = None):
        self.path = Path(path)
        self.shard_dir = self.path / SHARDS_DIR
        self.created_folder = False
        """Whether `locked()` made the folder (so taking back a failed start removes it too)."""
        self.after_shard = after_shard
        """Called with each shard's path once it is written (a run with a URL output copies it there)."""

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the folder for this process (creating it), so that two runs never write into it at once.

        The lock is the kernel's (`flock` on the folder): it goes away with the process, even on SIGKILL.
        A full disk, a read-only file system or a folder it may not write is reported in one line.
        """
        if self.path.exists() and not self.path.is_dir():
            raise SddError(f"output {self.path} is a file; choose a folder for --output")
        try:
            self.created_folder = not self.path.exists()
            self.path.mkdir(parents=True, exist_ok=True)
            with self._flock():
                yield
        except OSError as error:
            if error.errno in FULL_DISK_ERRORS or (
                error.errno in PERMISSION_ERRORS and str(error.filename or "").startswith(str(self.path))
            ):
                raise SddError(
                    f"cannot write in {self.path}: {os.strerror(error.errno)}; make room or fix it, then run the "
                    "same command again to resume"
                ) from None
            raise

    @contextlib.contextmanager
    def _flock(self) -> Iterator[None]:
        try:
            import fcntl
        except ImportError:  # no flock on this platform: run unguarded
            yield
            return
        handle = os.open(self.path, os.O_RDONLY)
        try:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise SddError(
                    f"{self.path} is in use by another distill run; wait for it to end or choose another --output"
                ) from None
            yield
        finally:
            os.close(handle)

    def open(self, identity: dict, overwrite: bool, ignored_options: frozenset[str] = frozenset()) -> bool:
        """Start or resume the run named by `identity`; refuse to mix it with another run's results.

        Options in `ignored_options` (and the identity's hash) are left out of the comparison, so a manifest
        written when they still counted resumes all the same. Returns whether this call started the run
        (wrote its manifest), so a start that fails can be taken back.
        """
        manifest = self.path / RUN_MANIFEST
        if overwrite:
            self.clear()
        elif manifest.exists():
            previous = self._read_manifest()
            if _comparable(previous.get("identity"), ignored_options) != _comparable(identity, ignored_options):
                changed = sorted(_changed_keys(previous.get("identity", {}), identity))
                raise SddError(
                    f"{self.path} holds results of another run (differs in: {', '.join(changed) or 'format'}); "
                    "use --overwrite to start over or choose another --output"
                )
        elif not self._holds_only_a_start():
            raise SddError(f"{self.path} is not empty and holds no sdd-data run; choose another --output")
        self.remove_leftovers()
        started = not manifest.exists()
        if started:
            self.path.mkdir(parents=True, exist_ok=True)
            write_json(manifest, {"identity": identity})
        self.shard_dir.mkdir(exist_ok=True)
        return started

    def take_back_start(self) -> None:
        """Undo a start that produced nothing (the teacher failed to load): the manifest, shards/, and the folder."""
        if any(self.shard_dir.iterdir()):
            return
        self.shard_dir.rmdir()
        (self.path / RUN_MANIFEST).unlink(missing_ok=True)
        if self.created_folder and not any(self.path.iterdir()):
            self.path.rmdir()

    def _read_manifest(self) -> dict:
        manifest = self.path / RUN_MANIFEST
        try:
            previous = json.loads(manifest.read_text())
        except (OSError, UnicodeDecodeError, ValueError) as error:
            raise SddError(
                f"{manifest} is not a readable run manifest; use --overwrite to start over ({first_line(error)})"
            ) from None
        if not isinstance(previous, dict) or not isinstance(previous.get("identity"), dict):
            raise SddError(f"{manifest} is not a readable run manifest; use --overwrite to start over")
        return previous

    def _holds_only_a_start(self) -> bool:
        """Whether the folder is missing, empty, or holds only what a run killed before its manifest landed."""
        if not self.path.exists():
            return True
        for entry in self.path.iterdir():
            if entry.name == SHARDS_DIR and entry.is_dir() and not any(entry.iterdir()):
                continue  # made before the manifest by earlier versions
            if entry.match(LEFTOVER_PATTERN) and entry.name.startswith(f".{RUN_MANIFEST}."):
                continue
            return False
        return True

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
        for leftover in [*self.path.glob(LEFTOVER_PATTERN), *self.shard_dir.glob(LEFTOVER_PATTERN)]:
            shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()

    def shard_path(self, index: int) -> Path:
        return self.shard_dir / f"shard-{index:05d}.parquet"

    def completed_shards(self, expected_ids: list[list[str]], schema: pa.Schema) -> set[int]:
        """Indices of the shards already written whole, for shards meant to hold `expected_ids`, in order.

        A shard that cannot be read, or has another schema, is deleted (with a note) so it is done again;
        one that holds other rows means the rows changed under the run, and is refused.
        """
        done = set()
        for index, ids in enumerate(expected_ids):
            path = self.shard_path(index)
            if not path.exists():
                continue
            try:
                table = pq.read_table(path)
                readable = table.schema.equals(schema)
                problem = "another schema"
            except (OSError, pa.ArrowException) as error:
                readable, problem = False, first_line(error)
            if not readable:
                print(f"sdd-data distill: {path} cannot be used ({problem}); doing it again", file=sys.stderr)
                path.unlink()
                continue
            if table.column("id").to_pylist() != ids:
                raise SddError(
                    f"{path} holds other rows than this run's; use --overwrite to start over (did the source or "
                    "the --decontaminate files change?)"
                )
            done.add(index)
        return done

    def write_shard(self, index: int, table: pa.Table) -> None:
        """Write one shard atomically."""
        write_atomically(self.shard_path(index), lambda target: pq.write_table(table, target))
        self.shard_written(index)

    def shard_written(self, index: int) -> None:
        """Note that a shard is in place (written here, or by a replica process)."""
        if self.after_shard is not None:
            self.after_shard(self.shard_path(index))

    def read_shards(self, count: int) -> pa.Table:
        """All shards, in order, as one table; a missing shard is an error."""
        missing = [index for index in range(count) if not self.shard_path(index).exists()]
        if missing:
            raise SddError(f"{self.path}: shard(s) {missing[:5]} missing; rerun the same command to finish them")
        return pa.concat_tables([pq.read_table(self.shard_path(index)) for index in range(count)])

    def finished_stats(self) -> dict | None:
        """The stats of a finished run (every output in place), or None when the final phase has to run."""
        if not all((self.path / name).exists() for name in (DATA_DIR, DISTILLED_PARQUET, DROPPED_PARQUET)):
            return None
        try:
            stats = json.loads((self.path / STATS_FILE).read_text())
        except (OSError, UnicodeDecodeError, ValueError):
            return None
        return stats if isinstance(stats, dict) else None

    def unmark_finished(self) -> None:
        """Remove the stats file, the mark of a finished run, before any output is rewritten."""
        (self.path / STATS_FILE).unlink(missing_ok=True)

    def replace_data_dir(self, staging: Path) -> None:
        """Put a fully written `data/` folder in place of the old one (moved aside first, then deleted)."""
        target = self.path / DATA_DIR
        retired = self.path / f".{DATA_DIR}.old.tmp-{os.getpid()}"
        if target.exists():
            os.rename(target, retired)
        os.rename(staging, target)
        if retired.is_dir():
            shutil.rmtree(retired)
        elif retired.exists():
            retired.unlink()


def _comparable(identity, ignored_options: frozenset[str]):
    """An identity without its hash and the options that do not count."""
    if not isinstance(identity, dict):
        return identity
    config = identity.get("config")
    if isinstance(config, dict):
        identity = {**identity, "config": {k: v for k, v in config.items() if k not in ignored_options}}
    return {key: value for key, value in identity.items() if key != "hash"}


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
