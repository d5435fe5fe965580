"""A push to a Hub repo: the files are staged in a temporary folder and land in one commit, or, for a dry run,
are written to --output-dir and listed, with nothing uploaded. Datasets and models push the same way.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

from sdd_data.errors import SddError, first_line
from sdd_data.output_folder import staged_output
from sdd_data.publish.config import PublishConfig
from sdd_data.publish.hub_repo import RepoState, commit_folder


def push(
    config: PublishConfig,
    api,
    state: RepoState,
    stage: Callable[[Path, RepoState], list[str]],
    repo_type: str,
    message: str,
) -> tuple[list[str], list[str], str | None]:
    """Stage the files and commit them (or, for a dry run, write them to --output-dir and list them);
    the paths written, the paths deleted and the commit."""
    repo_id = str(config.repo_id)
    target = f"{repo_id}@{config.revision}"
    if config.dry_run:
        folder = Path(str(config.output_dir)).expanduser()
        if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
            raise SddError(
                f"--output-dir {folder} is not an empty folder; a dry run writes exactly what would be "
                "uploaded, into a new or empty folder"
            )
        try:
            with staged_output(folder) as staging:
                written = stage(staging, state)
        except OSError as error:
            raise SddError(f"cannot write {folder} ({first_line(error)}); nothing was written there") from None
        deleted = sorted(set(state.files) - set(written))
        kind = "" if repo_type == "dataset" else f" {repo_type} repo"
        print(f"dry run: would commit to{kind} {target} (written to {folder}):")
        print(
            "\n".join(
                [
                    *(f"  upload {path} ({(folder / path).stat().st_size} bytes)" for path in written),
                    *(f"  delete {path}" for path in deleted),
                ]
            )
        )
        return written, deleted, None
    with tempfile.TemporaryDirectory(prefix="sdd-publish-") as staging:
        written = stage(Path(staging), state)
        deleted = sorted(set(state.files) - set(written))
        commit = commit_folder(
            api,
            repo_id,
            config.revision,
            Path(staging),
            written,
            deleted,
            state,
            config.private,
            message,
            repo_type=repo_type,
        )
    return written, deleted, commit
