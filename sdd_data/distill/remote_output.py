"""A run whose `--output` is an fsspec URL (`s3://bucket/runs/gsm8k`, `gs://…`, `file:///shared/run`, …).

The run works in a local mirror folder under the sdd-data cache, with the same guarantees as any local run
(atomic shards, the lock, the final phase), and copies to the URL as it goes: every shard as soon as it is
written (the manifest with the first one), then the outputs, the stats file last. A rerun on any machine
first fetches the manifest and the shards already at the URL, so it resumes where the lost one stopped, with
no row lost or duplicated. Two runs writing to one URL at the same time from different machines are not
prevented: the lock is local.
"""

from __future__ import annotations

import contextlib
import hashlib
import posixpath
import shutil
from collections.abc import Iterator
from pathlib import Path

from sdd_data.artifacts import DATA_DIR, DISTILLED_PARQUET, DROPPED_PARQUET, RUN_MANIFEST, SHARDS_DIR, STATS_FILE
from sdd_data.errors import SddError, first_line
from sdd_data.output_folder import write_atomically

FINAL_FILES = (DISTILLED_PARQUET, DROPPED_PARQUET)


def forget_mirror(mirror: Path, outputs_only: bool) -> None:
    """Remove a mirror's outputs (stats file first) and, unless `outputs_only`, its manifest and shards too.
    Only the names a run writes are removed: the mirror lives in this project's cache and holds nothing else."""
    names = [STATS_FILE, *FINAL_FILES, DATA_DIR] + ([] if outputs_only else [RUN_MANIFEST, SHARDS_DIR])
    for name in names:
        path = mirror / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def is_url(output: str) -> bool:
    """Whether an output names an fsspec URL rather than a local folder."""
    return "://" in output


class RemoteOutput:
    """The URL a run copies its work to, and the local mirror folder it works in."""

    def __init__(self, url: str):
        import fsspec

        try:
            self.fs, root = fsspec.core.url_to_fs(url)
        except (ImportError, ValueError) as error:
            raise SddError(f"cannot write to {url}: {first_line(error)}") from None
        self.url = url
        self.root = root.rstrip("/")
        self.manifest_copied = False

    @property
    def mirror(self) -> Path:
        """The local folder the run works in: one per URL, in the sdd-data cache."""
        from sdd_data.models.resolve import cache_dir

        return cache_dir() / "remote-runs" / hashlib.sha256(self.url.encode()).hexdigest()[:16]

    def _remote(self, *parts: str) -> str:
        return posixpath.join(self.root, *parts)

    def fetch(self, mirror: Path) -> None:
        """Make the mirror hold what the URL holds: its manifest, its shards and (for a finished run) its outputs.

        The URL decides. Mirror shards are kept only under the same manifest as the URL's (the same run), and
        the mirror's outputs only when the URL has its own; so a run is finished only when its URL is, and a
        mirror never mixes in shards made under another config."""
        with self._io("read"):
            manifest = self._remote(RUN_MANIFEST)
            remote_manifest = self.fs.cat_file(manifest) if self.fs.exists(manifest) else None
            local_manifest = mirror / RUN_MANIFEST
            same_run = remote_manifest is not None and (
                local_manifest.is_file() and local_manifest.read_bytes() == remote_manifest
            )
            finished = remote_manifest is not None and self.fs.exists(self._remote(STATS_FILE))
            forget_mirror(mirror, outputs_only=same_run)
            if remote_manifest is None:
                return
            mirror.joinpath(SHARDS_DIR).mkdir(parents=True, exist_ok=True)
            self._get(RUN_MANIFEST, mirror)
            remote_shards = self._remote(SHARDS_DIR)
            if self.fs.exists(remote_shards):
                for remote in self.fs.ls(remote_shards, detail=False):
                    name = posixpath.basename(remote)
                    if name.startswith("shard-") and not (mirror / SHARDS_DIR / name).exists():
                        self._get(posixpath.join(SHARDS_DIR, name), mirror)
            if finished:
                for name in FINAL_FILES:
                    self._get(name, mirror)
                self.fs.get(self._remote(DATA_DIR), str(mirror / DATA_DIR), recursive=True)
                self._get(STATS_FILE, mirror)

    def put_shard(self, shard: Path) -> None:
        """Copy one written shard to the URL, after the run's manifest (copied with the first shard, so a
        teacher that fails to load leaves nothing at the URL)."""
        mirror = shard.parent.parent
        with self._io("write"):
            if not self.manifest_copied:
                self._put(mirror, RUN_MANIFEST)
                self.manifest_copied = True
            self._put(mirror, posixpath.join(SHARDS_DIR, shard.name))

    def put_outputs(self, mirror: Path) -> None:
        """Copy the final outputs to the URL; the stats file, which marks a finished run, goes last."""
        with self._io("write"):
            self._put(mirror, RUN_MANIFEST)
            if self.fs.exists(self._remote(STATS_FILE)):
                self.fs.rm(self._remote(STATS_FILE))
            for name in FINAL_FILES:
                self._put(mirror, name)
            if self.fs.exists(self._remote(DATA_DIR)):
                self.fs.rm(self._remote(DATA_DIR), recursive=True)
            self.fs.put(str(mirror / DATA_DIR), self._remote(DATA_DIR), recursive=True)
            self._put(mirror, STATS_FILE)

    def _get(self, name: str, mirror: Path) -> None:
        write_atomically(mirror / name, lambda target: self.fs.get_file(self._remote(name), str(target)))

    def _put(self, mirror: Path, name: str) -> None:
        self.fs.makedirs(posixpath.dirname(self._remote(name)), exist_ok=True)
        self.fs.put_file(str(mirror / name), self._remote(name))

    @contextlib.contextmanager
    def _io(self, action: str) -> Iterator[None]:
        """A storage failure (no such bucket, no credentials, the network) as one line."""
        try:
            yield
        except (OSError, ValueError) as error:
            raise SddError(
                f"cannot {action} {self.url}: {first_line(error)}; run the same command again to resume"
            ) from None

    def clear(self) -> None:
        """Remove what an earlier run wrote at the URL (for --overwrite), the stats file and manifest around it."""
        with self._io("write"):
            for name in (STATS_FILE, DATA_DIR, DISTILLED_PARQUET, DROPPED_PARQUET, SHARDS_DIR, RUN_MANIFEST):
                if self.fs.exists(self._remote(name)):
                    self.fs.rm(self._remote(name), recursive=True)
