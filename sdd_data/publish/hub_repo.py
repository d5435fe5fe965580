"""A dataset repo on the Hub: who the token belongs to, what the repo holds, and one all-or-nothing commit."""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

from sdd_data.errors import SddError
from sdd_data.hub import hub_endpoint, hub_offline


@dataclass
class RepoState:
    """What a publish target holds before publishing: its card, provenance, data files and head commit."""

    card: str | None = None
    provenance: dict | None = None
    files: tuple[str, ...] = ()
    head: str | None = None
    repo_exists: bool = False
    branch_exists: bool = False


def _one_line(error: Exception, limit: int = 400) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= limit else text[:limit] + "..."


def hub_client(token_required: bool):
    """An `HfApi` for the Hub in use, its token checked with whoami; a clear error when it is missing or rejected."""
    from huggingface_hub import HfApi, get_token
    from huggingface_hub.errors import HfHubHTTPError

    endpoint = hub_endpoint()
    if hub_offline():
        raise SddError("HF_HUB_OFFLINE is set, so nothing can be published to the Hub; unset it or use --output-dir")
    token = get_token()
    if token is None:
        if token_required:
            raise SddError(
                "no Hugging Face token found: set HF_TOKEN or run `hf auth login` (a token with write access)"
            )
        return HfApi(endpoint=endpoint, token=False)
    api = HfApi(endpoint=endpoint, token=token)
    try:
        api.whoami()
    except HfHubHTTPError as error:
        status = error.response.status_code if error.response is not None else None
        if status == 401:
            raise SddError(
                f"the Hugging Face token was rejected by {endpoint} (401 Unauthorized): set a valid "
                "HF_TOKEN or run `hf auth login --force`"
            ) from None
        raise SddError(f"could not check the Hugging Face token at {endpoint}: HTTP {status}") from None
    except Exception as error:  # noqa: BLE001 -- connection errors come from the HTTP client in several types
        raise SddError(f"the Hugging Face Hub ({endpoint}) is unreachable: {_one_line(error)}") from None
    return api


def read_repo(api, repo_id: str, revision: str, config_name: str, card_file: str, provenance_file: str) -> RepoState:
    """The repo's card, provenance, files of `config_name` and head commit at `revision` (main when it is new)."""
    from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

    try:
        info = api.dataset_info(repo_id, revision=revision)
        branch_exists = True
    except RepositoryNotFoundError:
        return RepoState()
    except RevisionNotFoundError:
        info = api.dataset_info(repo_id)  # the new branch starts from main
        branch_exists = False
    names = {sibling.rfilename for sibling in info.siblings or []}
    with tempfile.TemporaryDirectory(prefix="sdd-publish-card-") as cache:

        def download(name: str) -> str | None:
            if name not in names:
                return None
            path = api.hf_hub_download(repo_id, name, repo_type="dataset", revision=info.sha, cache_dir=cache)
            return Path(path).read_text(encoding="utf-8")

        card, provenance = download(card_file), download(provenance_file)
    prefix = f"data/{config_name}/"
    return RepoState(
        card=card,
        provenance=json.loads(provenance) if provenance else None,
        files=tuple(sorted(name for name in names if name.startswith(prefix))),
        head=info.sha,
        repo_exists=True,
        branch_exists=branch_exists,
    )


def commit_folder(
    api,
    repo_id: str,
    revision: str,
    folder: Path,
    paths: list[str],
    deletions: list[str],
    state: RepoState,
    private: bool,
    message: str,
) -> str:
    """Create the repo and branch if needed, then upload `paths` of `folder` and delete `deletions` in one commit.

    LFS files are uploaded before the commit is made; if anything fails, no commit is made. The commit is
    refused when the branch moved since `state` was read, so a concurrent change is never overwritten.
    """
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete
    from huggingface_hub.errors import HfHubHTTPError

    try:
        if not state.repo_exists:
            api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        if revision != "main" and not state.branch_exists:
            api.create_branch(repo_id, branch=revision, revision=state.head, repo_type="dataset", exist_ok=True)
        operations = [CommitOperationAdd(path_in_repo=path, path_or_fileobj=str(folder / path)) for path in paths]
        operations += [CommitOperationDelete(path_in_repo=path) for path in deletions]
        info = api.create_commit(
            repo_id,
            operations,
            commit_message=message,
            repo_type="dataset",
            revision=revision,
            parent_commit=state.head,
        )
    except HfHubHTTPError as error:
        status = error.response.status_code if error.response is not None else None
        if status == 412:
            raise SddError(f"{repo_id}@{revision} changed while publishing; nothing was committed, run again") from None
        raise SddError(
            f"publishing to {repo_id} failed (HTTP {status}); nothing was committed: {_one_line(error)}"
        ) from None
    except (ValueError, RuntimeError, OSError) as error:  # invalid card metadata, failed LFS upload, I/O
        raise SddError(f"publishing to {repo_id} failed; nothing was committed: {_one_line(error)}") from None
    return info.oid
