"""What a model folder holds, as a short digest: equal for the same model however and whenever it was written."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import BinaryIO

# Files that describe how a folder was made, not the model it holds: the card and sdd-data's own records.
_RECORD_FILES = ("README.md", "sdd_data_*.json")


def _tensor_header(file: BinaryIO) -> dict | None:
    """A safetensors file's header (tensor name to dtype, shape and byte range), or None where it is unreadable."""
    header_size = int.from_bytes(file.read(8), "little")
    if header_size > os.fstat(file.fileno()).st_size - 8:
        return None
    try:
        header = json.loads(file.read(header_size))
        tensors = {name: (value["dtype"], value["shape"], value["data_offsets"])
                   for name, value in header.items() if name != "__metadata__"}  # fmt: skip
    except (ValueError, TypeError, KeyError, AttributeError):
        return None
    return {"start": 8 + header_size, "tensors": tensors}


def weights_digest(folder: str | Path) -> str:
    """A checkpoint by its tensors: name, dtype, shape and bytes of each, whatever else its files record.

    A file that is not readable safetensors is taken by its bytes; loading it is what reports the fault."""
    digest = hashlib.sha256()
    for path in sorted(Path(folder).glob("*.safetensors")):
        with path.open("rb") as file:
            header = _tensor_header(file)
            if header is None:
                file.seek(0)
                update_with_file(digest, file)
                continue
            for name in sorted(header["tensors"]):
                dtype, shape, (begin, end) = header["tensors"][name]
                file.seek(header["start"] + begin)
                digest.update(json.dumps([name, dtype, shape]).encode())
                digest.update(file.read(end - begin))
    return digest.hexdigest()[:16]


def update_with_file(digest: hashlib._Hash, file: BinaryIO) -> None:
    """Feed a file's remaining bytes to a digest, in 16 MiB blocks."""
    for block in iter(lambda: file.read(1 << 24), b""):
        digest.update(block)


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
            update_with_file(digest, file)
    return digest.hexdigest()[:16]
