"""Outputs that appear whole or not at all: files and folders written beside their place, then renamed into it."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from sdd_data.errors import SddError


def check_output_free(output: Path) -> None:
    """Refuse an output that exists and is not an empty folder."""
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise SddError(f"output {output} already exists and is not an empty folder; choose a new one")


@contextlib.contextmanager
def staged_output(output: Path, replace: bool = False) -> Iterator[Path]:
    """A fresh folder beside `output` to write into; it becomes `output` when the block ends without error.

    `output` must be missing or empty, unless `replace` is set: then the old folder is swapped out and
    deleted only once the new one is in place. On any error the staged folder is deleted and `output`
    is left as it was.
    """
    if not replace:
        check_output_free(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output.name}.partial-", dir=output.parent))
    try:
        yield staging
        staging.chmod(0o755)  # mkdtemp makes it private; the output is an ordinary folder
        retired = None
        if output.exists() and replace:
            retired = output.with_name(f"{staging.name}.old")
            os.rename(output, retired)
        elif output.exists():
            output.rmdir()  # empty, checked above
        os.rename(staging, output)
        if retired is not None:
            shutil.rmtree(retired, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def write_atomically(path: Path, write: Callable[[Path], object]) -> None:
    """Call `write(temporary_path)`, flush it to disk, then move it over `path` in one step."""
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(temporary)
        with open(temporary, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        if temporary.exists():
            temporary.unlink()


def write_json(path: Path, values: dict) -> None:
    """Write a JSON file atomically."""
    write_atomically(
        path, lambda target: target.write_text(json.dumps(values, indent=2, ensure_ascii=False, default=str) + "\n")
    )
