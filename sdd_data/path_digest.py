"""What a file or folder holds, as a short digest, to tell whether a step's inputs changed since it last ran."""

from __future__ import annotations

import hashlib
from pathlib import Path

from sdd_data.artifacts import STEP_RECORD
from sdd_data.models.identity import update_with_file

HASHED_BYTES = 256 << 20
"""Files up to this size are taken by their bytes; larger ones (model weights) by their size and modification time."""


def path_digest(path: Path) -> str:
    """A digest of a file's contents, or of every file in a folder (its name and contents), leaving out the
    records `sdd-data run` writes beside a step's output."""
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(item for item in path.rglob("*") if item.is_file())
    for file in files:
        if file.name == STEP_RECORD:
            continue
        stat = file.stat()
        name = file.name if file == path else file.relative_to(path).as_posix()
        digest.update(f"{name}:{stat.st_size}\n".encode())
        if stat.st_size > HASHED_BYTES:
            digest.update(str(stat.st_mtime_ns).encode())
            continue
        with file.open("rb") as handle:
            update_with_file(digest, handle)
    return digest.hexdigest()[:16]
