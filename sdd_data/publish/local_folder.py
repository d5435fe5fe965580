"""Publishing into a local folder in the Hub's layout, so that it changes in one step or not at all.

The new folder is built whole beside the old one: the files of the other configs (hard links, else
copies), this config's new shards, the merged card and sdd_data.json. Then it takes the old folder's
place in one rename (see `output_folder.swap_in`), and the old folder is deleted. Whenever the process
dies, the folder is the old output or the new one, never a mix. One publish at a time holds a lock
beside the folder, so two publishes of different configs never lose one another's.

A model (`save_model_to_folder`) is saved the same way, except that the new folder holds only the new
model: a folder a model was published to before is replaced whole.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

from sdd_data import artifacts
from sdd_data.artifacts import CARD_FILE, DATA_DIR, PROVENANCE_FILE
from sdd_data.errors import SddError, first_line
from sdd_data.output_folder import exclusive_lock, staged_output
from sdd_data.publish.hub_repo import NOTHING_PUBLISHED, RepoState, parse_provenance

Stager = Callable[[Path, RepoState], list[str]]
"""Writes the new files of a config into a folder, given what the target held; returns their paths."""


def read_folder(folder: Path, config_name: str) -> RepoState:
    """What a folder published to before holds (nothing for a new or empty folder)."""
    if folder.exists() and not folder.is_dir():
        raise SddError(f"--output-dir {folder} is a file; give a folder (new, empty, or one sdd-data published to)")
    if not folder.exists() or not any(folder.iterdir()):
        return RepoState()
    output = artifacts.detect(folder)
    if output is not None and output.kind != artifacts.PUBLISHED:
        raise SddError(
            f"--output-dir {folder} is a {artifacts.WRITTEN_BY[output.kind]} output, not a published folder; "
            "give a new or empty folder, or one that sdd-data published to"
        )
    provenance_path = folder / PROVENANCE_FILE
    if not provenance_path.is_file():
        raise SddError(f"{folder} holds other files; give an empty folder or one that sdd-data published to")
    try:
        provenance_text = provenance_path.read_text(encoding="utf-8")
        card = folder / CARD_FILE
        card_text = card.read_text(encoding="utf-8") if card.is_file() else None
    except (OSError, UnicodeDecodeError) as error:
        raise SddError(f"cannot read {folder}: {first_line(error)}; {NOTHING_PUBLISHED}") from None
    files = sorted(str(path.relative_to(folder)) for path in (folder / DATA_DIR / config_name).glob("*"))
    provenance = parse_provenance(provenance_text, str(provenance_path))
    return RepoState(card=card_text, provenance=provenance, files=tuple(files))


def link_or_copy(source: str, target: str) -> None:
    """Hard-link a file's contents (published files are never changed in place; a symbolic link is followed to
    its file), or copy them where links fail."""
    source = os.path.realpath(source)
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _carry_over(old: Path, new: Path, config_name: str) -> None:
    """Everything of the old folder but this config's data, its card and sdd_data.json, into `new`."""
    for entry in old.iterdir():
        if entry.name in (CARD_FILE, PROVENANCE_FILE):
            continue
        if entry.name == DATA_DIR and entry.is_dir() and not entry.is_symlink():
            (new / DATA_DIR).mkdir()
            for config_folder in entry.iterdir():
                if config_folder.name != config_name:
                    _copy_entry(config_folder, new / DATA_DIR / config_folder.name)
            continue
        _copy_entry(entry, new / entry.name)


def _copy_entry(source: Path, target: Path) -> None:
    if source.is_dir() and not source.is_symlink():
        shutil.copytree(source, target, symlinks=True, copy_function=link_or_copy)
    elif source.is_symlink():
        os.symlink(os.readlink(source), target)
    else:
        link_or_copy(str(source), str(target))


def save_to_folder(folder: Path, config_name: str, stage: Stager) -> tuple[list[str], list[str]]:
    """Publish one config into `folder` in one step; the paths written and the old paths now gone."""

    def stage_with_other_configs(staging: Path, state: RepoState) -> list[str]:
        if folder.is_dir():
            _carry_over(folder, staging, config_name)
        return stage(staging, state)

    return _replace_in_one_step(folder, lambda target: read_folder(target, config_name), stage_with_other_configs)


def _replace_in_one_step(
    folder: Path, read_state: Callable[[Path], RepoState], stage: Stager
) -> tuple[list[str], list[str]]:
    """Build the folder's new content beside it (under a lock) and swap it in; the paths written and the old
    paths now gone. A symlinked folder keeps its link: the folder it points at is replaced."""
    if folder.is_symlink():
        folder = folder.resolve()
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        with exclusive_lock(folder.parent / f".{folder.name}.publish.lock"):
            state = read_state(folder)
            with staged_output(folder, replace=True) as staging:
                written = stage(staging, state)
    except OSError as error:
        raise SddError(
            f"cannot write {folder} ({first_line(error)}); {NOTHING_PUBLISHED}: the folder is as it was"
        ) from None
    return written, sorted(set(state.files) - set(written))


def _read_model_folder(folder: Path) -> RepoState:
    """What a folder a model was published to holds (nothing for a new or empty folder)."""
    if folder.exists() and not folder.is_dir():
        raise SddError(f"--output-dir {folder} is a file; give a folder (new, empty, or one a model was published to)")
    if not folder.exists() or not any(folder.iterdir()):
        return RepoState()
    if not artifacts.is_published_model(folder):
        output = artifacts.detect(folder)
        what = f"a {artifacts.WRITTEN_BY[output.kind]} output" if output else "a folder of other files"
        raise SddError(
            f"--output-dir {folder} is {what}, not a folder a model was published to; {NOTHING_PUBLISHED}: "
            "give a new or empty folder, or one that `sdd-data publish --model` saved to"
        )
    card = folder / CARD_FILE
    try:
        card_text = card.read_text(encoding="utf-8") if card.is_file() else None
    except (OSError, UnicodeDecodeError) as error:
        raise SddError(f"cannot read {card}: {first_line(error)}; {NOTHING_PUBLISHED}") from None
    files = sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file())
    return RepoState(card=card_text, files=tuple(files))


def save_model_to_folder(folder: Path, stage: Stager) -> tuple[list[str], list[str]]:
    """Save a model into `folder` in one step, replacing a model published there before; the paths written
    and the old paths now gone."""
    return _replace_in_one_step(folder, _read_model_folder, stage)
