"""Output folders that appear whole or not at all: written beside their place, then renamed into it."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .errors import SddError


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
