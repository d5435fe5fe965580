"""An append-only on-disk cache of fixed-size float vectors keyed by content hashes.

Each `put` writes one new shard file (`<uuid>.npz`: the keys and one row per key) atomically, so
concurrent writers never clash and a killed process leaves no half-written shard behind. Reading
loads every shard of the folder; a key stored twice keeps its last value.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path

import numpy as np

from sdd_data.models.resolve import cache_dir


def default_cache_dir() -> Path:
    """Where selection caches live by default: `<sdd-data cache>/select`."""
    return cache_dir() / "select"


def content_key(*parts: str) -> str:
    """sha256 over the parts, each length-prefixed so that ("ab", "c") and ("a", "bc") differ."""
    digest = hashlib.sha256()
    for part in parts:
        data = part.encode("utf-8")
        digest.update(len(data).to_bytes(8, "big"))
        digest.update(data)
    return digest.hexdigest()


class VectorCache:
    """Vectors of one kind (one embedder, or one pair of models and a scoring mode) under one folder."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    def get_many(self, keys: list[str]) -> dict[str, np.ndarray]:
        """The cached vectors of those keys that are present."""
        wanted = set(keys)
        found: dict[str, np.ndarray] = {}
        if not wanted or not self.folder.is_dir():
            return found
        for shard in sorted(self.folder.glob("*.npz"), key=lambda path: path.stat().st_mtime):
            with np.load(shard) as stored:
                for key, vector in zip(stored["keys"].tolist(), stored["vectors"]):
                    if key in wanted:
                        found[key] = vector
        return found

    def put_many(self, keys: list[str], vectors: np.ndarray) -> None:
        """Store one vector per key in a new shard (written to a temporary name, then renamed)."""
        if not keys:
            return
        vectors = np.asarray(vectors)
        if len(vectors) != len(keys):
            raise ValueError(f"{len(keys)} keys but {len(vectors)} vectors")
        self.folder.mkdir(parents=True, exist_ok=True)
        name = uuid.uuid4().hex
        temporary = self.folder / f".{name}.tmp"
        try:
            with open(temporary, "wb") as handle:
                np.savez(handle, keys=np.array(keys), vectors=vectors)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, self.folder / f"{name}.npz")
        finally:
            if temporary.exists():
                temporary.unlink()
