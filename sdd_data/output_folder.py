"""Outputs that appear whole or not at all: files and folders written beside their place, then renamed into it."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from sdd_data.errors import SddError


def check_output_place(output: Path) -> None:
    """Refuse an output that cannot be a folder: it is a file, or a folder above it is a file."""
    output = Path(output).expanduser()
    for place in (output, *output.parents):
        if place.exists() or place.is_symlink():
            if not place.is_dir():
                where = "is a file" if place == output else f"is inside {place}, which is a file"
                raise SddError(f"output {output} {where}; choose a folder")
            return


def check_output_free(output: Path) -> None:
    """Refuse an output that exists and is not an empty folder, or that cannot be a folder."""
    check_output_place(output)
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
        swap_in(staging, output)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _exchange(first: Path, second: Path) -> bool:
    """Swap two paths in one step (Linux renameat2 RENAME_EXCHANGE); False where the system cannot."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    at_current_dir, rename_exchange = -100, 2
    if renameat2(at_current_dir, os.fsencode(first), at_current_dir, os.fsencode(second), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):  # a kernel or file system without exchange
        return False
    raise OSError(code, os.strerror(code), str(first), None, str(second))


def swap_in(staging: Path, output: Path) -> None:
    """Make the complete folder `staging` appear as `output`, replacing the old one, then delete the old one.

    Where the system can swap two paths in one step (Linux), `output` is at every moment either the
    old folder or the new one, whenever the process dies. Elsewhere the old folder is renamed aside
    first, so a crash between the two renames leaves the old folder beside `output`, whole.
    """
    if not output.exists():
        os.rename(staging, output)
        return
    if _exchange(staging, output):
        shutil.rmtree(staging, ignore_errors=True)  # now the old folder
        return
    retired = staging.with_name(f"{staging.name}.old")
    os.rename(output, retired)
    os.rename(staging, output)
    shutil.rmtree(retired, ignore_errors=True)


@contextlib.contextmanager
def exclusive_lock(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive fcntl lock on `lock_path` (released by the OS if the process dies)."""
    with open(lock_path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


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
