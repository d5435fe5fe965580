"""Symbolic links in what publish reads: a link that leaves its folder is refused, one inside is its contents.

A folder handed to publish must not carry out files from elsewhere (`special_tokens_map.json ->
../secret.txt` would upload the secret). The one kind of link that leaves a folder and is accepted is a
Hugging Face cache snapshot's (`snapshots/<revision>/x -> ../../blobs/<hash>`), which stays inside its model's
own cache folder. Files are always published as their contents, never as links.
"""

from __future__ import annotations

from pathlib import Path

from sdd_data.errors import SddError


def _home(folder: Path) -> Path:
    """The folder links may point into: the folder, or for a Hub cache snapshot, its model's cache folder."""
    resolved = folder.resolve()
    if resolved.parent.name == "snapshots" and (resolved.parent.parent / "blobs").is_dir():
        return resolved.parent.parent
    return resolved


def check_links_inside(folder: Path, names: list[str] | None = None, flag: str = "--model") -> None:
    """Refuse `folder` when one of its files (`names`, else every file in it) is a link that leads outside."""
    home = _home(folder)
    paths = [folder / name for name in names] if names is not None else sorted(folder.rglob("*"))
    for path in paths:
        if not path.is_symlink():
            continue
        target = path.resolve()
        if not target.exists():
            raise SddError(f"{flag} {folder}: {path.name} is a link to {target}, which does not exist")
        if home not in target.parents:
            raise SddError(
                f"{flag} {folder}: {path.relative_to(folder)} is a link to {target}, outside the folder; "
                "publish takes the files of the folder only: copy that file in, if it belongs to the model"
            )
