"""What a model folder holds, as a short digest: equal for the same model however and whenever it was written."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

# Files that describe how a folder was made, not the model it holds: the card and sdd-data's own records.
_RECORD_FILES = ("README.md", "sdd_data_*.json")


def weights_digest(folder: str | Path) -> str:
    """A checkpoint by its tensors: name, dtype, shape and bytes of each, whatever else its files record."""
    digest = hashlib.sha256()
    for path in sorted(Path(folder).glob("*.safetensors")):
        with path.open("rb") as file:
            header_size = int.from_bytes(file.read(8), "little")
            header = json.loads(file.read(header_size))
            start = 8 + header_size
            for name in sorted(key for key in header if key != "__metadata__"):
                tensor = header[name]
                begin, end = tensor["data_offsets"]
                file.seek(start + begin)
                digest.update(json.dumps([name, tensor["dtype"], tensor["shape"]]).encode())
                digest.update(file.read(end - begin))
    return digest.hexdigest()[:16]


def model_folder_digest(folder: str | Path) -> str:
    """A model folder by what loading it reads: its tensors (as `weights_digest`) and the bytes of every other
    file (config, tokenizer, template, other weight formats), leaving out its card and sdd-data's records.

    A model made again identically keeps its digest; any change to what it computes changes it."""
    folder = Path(folder)
    records = {path for pattern in _RECORD_FILES for path in folder.glob(pattern)}
    digest = hashlib.sha256(weights_digest(folder).encode())
    for path in sorted(item for item in folder.rglob("*") if item.is_file()):
        if path in records or (path.suffix == ".safetensors" and path.parent == folder):
            continue
        digest.update(f"{path.relative_to(folder).as_posix()}:{path.stat().st_size}\n".encode())
        with path.open("rb") as file:
            for block in iter(lambda: file.read(1 << 24), b""):
                digest.update(block)
    return digest.hexdigest()[:16]
