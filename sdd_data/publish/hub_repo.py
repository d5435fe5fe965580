"""A dataset or model repo on the Hub: who the token belongs to, what the repo holds, one all-or-nothing commit.

Every request the publish stage makes goes through here, and every way one can fail (an HTTP error, a
connection that does not open, a file of the repo that does not parse) becomes one `SddError` line that
says what happened, what became of the repo and what to do.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sdd_data.errors import SddError, first_line
from sdd_data.hub import hub_address, hub_endpoint, hub_offline, hub_reachable

NOTHING_PUBLISHED = "nothing was published"


@dataclass
class RepoState:
    """What a publish target holds before publishing: its card, provenance, the files this publish replaces
    (one config's data files of a dataset, the checkpoint files of a model) and its head commit."""

    card: str | None = None
    provenance: dict | None = None
    files: tuple[str, ...] = ()
    head: str | None = None
    repo_exists: bool = False
    branch_exists: bool = False


def _one_line(error: BaseException, limit: int = 300) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= limit else text[:limit] + "..."


def request_errors() -> tuple[type[BaseException], ...]:
    """What a Hub request raises: OSError, and the HTTP client's own error base (httpx's is not an OSError)."""
    from huggingface_hub.errors import HfHubHTTPError

    return (OSError, HfHubHTTPError.__bases__[0])


def http_status(error: BaseException) -> int | None:
    """The HTTP status behind a Hub error, looked up along its causes (None for a connection that failed)."""
    from huggingface_hub.errors import HfHubHTTPError

    seen: BaseException | None = error
    for _ in range(8):
        if seen is None:
            return None
        if isinstance(seen, HfHubHTTPError) and seen.response is not None:
            return seen.response.status_code
        seen = seen.__cause__ or seen.__context__
    return None


def _server_message(error: BaseException) -> str:
    message = getattr(error, "server_message", None)
    return f": {_one_line(Exception(message), 160)}" if message else ""


def hub_failure(error: BaseException, doing: str, repo_id: str, outcome: str = NOTHING_PUBLISHED) -> SddError:
    """One line for a failed Hub request while `doing` something to `repo_id`: what, its `outcome`, what to do."""
    status = http_status(error)
    endpoint = hub_endpoint()
    if status == 401:
        what = f"the Hub ({endpoint}) rejected the token while {doing} (HTTP 401)"
        todo = "set a valid HF_TOKEN or run `hf auth login --force`"
    elif status == 403:
        detail = f"HTTP 403 while {doing}{_server_message(error)}"
        what = f"the Hugging Face token lacks write access to {repo_id} ({detail})"
        todo = "use a token with write access to that namespace, or publish to a repo of your own"
    elif status == 429:
        what = f"the Hub ({endpoint}) is limiting the rate of requests (HTTP 429 while {doing})"
        todo = "wait a few minutes, then run the same command again"
    elif status is not None and status >= 500:
        what = f"the Hub ({endpoint}) failed while {doing} (HTTP {status})"
        todo = "the fault is on the Hub's side: run the same command again later"
    elif status is not None:
        what = f"the Hub refused {doing} for {repo_id} (HTTP {status}{_server_message(error)})"
        todo = "check the repo id, --revision and the token"
    else:
        what = f"the Hub ({endpoint}) could not be reached while {doing} ({_one_line(error, 160)})"
        todo = "check the network connection and HF_ENDPOINT, then run the same command again"
    return SddError(f"{what}; {outcome}; {todo}")


def hub_client(token_required: bool):
    """An `HfApi` for the Hub in use, its token checked with whoami; a clear error when it is missing or rejected."""
    from huggingface_hub import HfApi, get_token

    endpoint = hub_endpoint()
    if hub_offline():
        raise SddError("HF_HUB_OFFLINE is set, so nothing can be published to the Hub; unset it or use --output-dir")
    hub_address()  # HF_ENDPOINT is an http(s) address
    token = get_token()
    if token is None:
        if token_required:
            raise SddError(
                "no Hugging Face token found: set HF_TOKEN or run `hf auth login` (a token with write access)"
            )
        if not hub_reachable():  # without a token nothing else is asked before reading the repo
            raise SddError(
                f"the Hugging Face Hub ({endpoint}) is unreachable, so the repo cannot be read for a dry run; "
                f"{NOTHING_PUBLISHED}; check the network connection and HF_ENDPOINT, then run the same command again"
            )
        return HfApi(endpoint=endpoint, token=False)
    api = HfApi(endpoint=endpoint, token=token)
    try:
        api.whoami()
    except request_errors() as error:
        if http_status(error) == 401:
            raise SddError(
                f"the Hugging Face token was rejected by {endpoint} (401 Unauthorized): set a valid "
                "HF_TOKEN or run `hf auth login --force`"
            ) from None
        raise hub_failure(error, "checking the token", "the Hub") from None
    return api


def parse_provenance(text: str, where: str) -> dict:
    """The JSON object of a target's sdd_data.json; one line naming `where` when it is damaged."""
    try:
        values = json.loads(text)
    except ValueError as error:
        raise SddError(
            f"{where} is not readable JSON ({first_line(error)}); {NOTHING_PUBLISHED}; "
            "fix or delete that file, then publish again"
        ) from None
    if not isinstance(values, dict) or not isinstance(values.get("configs", {}), dict):
        raise SddError(
            f"{where} must hold a JSON object whose `configs` is an object; {NOTHING_PUBLISHED}; "
            "fix or delete that file, then publish again"
        )
    return values


def read_repo(
    api,
    repo_id: str,
    revision: str,
    owned: Callable[[str], bool],
    card_file: str,
    provenance_file: str,
    repo_type: str = "dataset",
) -> RepoState:
    """The repo's card, provenance, `owned` files (those this publish replaces) and head commit at `revision`
    (main's when the branch is new); an empty state when the repo does not exist."""
    from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

    try:
        try:
            info = api.repo_info(repo_id, revision=revision, repo_type=repo_type)
            branch_exists = True
        except RepositoryNotFoundError:
            return RepoState()
        except RevisionNotFoundError:
            info = api.repo_info(repo_id, repo_type=repo_type)  # the new branch starts from main
            branch_exists = False
        if branch_exists and revision != "main":
            branches = {branch.name for branch in api.list_repo_refs(repo_id, repo_type=repo_type).branches}
            if revision not in branches:
                raise SddError(
                    f"--revision {revision} of {repo_id} is a tag or a commit, not a branch; "
                    f"{NOTHING_PUBLISHED}; give a branch name (a missing branch is created from main)"
                )
        names = {sibling.rfilename for sibling in info.siblings or []}
        with tempfile.TemporaryDirectory(prefix="sdd-publish-card-") as cache:

            def download(name: str) -> str | None:
                if name not in names:
                    return None
                path = api.hf_hub_download(repo_id, name, repo_type=repo_type, revision=info.sha, cache_dir=cache)
                return Path(path).read_text(encoding="utf-8", errors="replace")

            card, provenance = download(card_file), download(provenance_file)
    except request_errors() as error:
        raise hub_failure(error, f"reading {repo_id}@{revision}", repo_id) from None
    return RepoState(
        card=card,
        provenance=parse_provenance(provenance, f"{provenance_file} of {repo_id}@{revision}") if provenance else None,
        files=tuple(sorted(name for name in names if owned(name))),
        head=info.sha,
        repo_exists=True,
        branch_exists=branch_exists,
    )


@dataclass
class Created:
    """What this publish created on the Hub, so that a failure takes back exactly that."""

    repo: bool = False
    branch: bool = False
    step: str = "creating the repo"
    """What was being done when a request failed."""
    repo_type: str = "dataset"


def _create_target(api, repo_id: str, revision: str, state: RepoState, private: bool, created: Created) -> None:
    """Create the repo and the branch when `state` says they are missing, noting each in `created`.

    Each is created with `exist_ok=False`: one that appeared since `state` was read belongs to someone
    else, so it is left alone and the publish is refused.
    """
    from huggingface_hub.errors import HfHubHTTPError

    try:
        if not state.repo_exists:
            api.create_repo(repo_id, repo_type=created.repo_type, private=private, exist_ok=False)
            created.repo = True
        if revision != "main" and not state.branch_exists:
            created.step = f"creating the branch {revision}"
            api.create_branch(
                repo_id, branch=revision, revision=state.head, repo_type=created.repo_type, exist_ok=False
            )
            created.branch = True
    except HfHubHTTPError as error:
        if http_status(error) != 409:
            raise
        what = f"the branch {revision} of {repo_id}" if created.repo or state.repo_exists else repo_id
        raise SddError(
            f"{what} appeared while publishing (HTTP 409: it exists, possibly where this token cannot see it); "
            f"{_cleanup(api, repo_id, revision, created)}; run the command again, or publish to a repo id of your own"
        ) from None


def _cleanup(api, repo_id: str, revision: str, created: Created) -> str:
    """Delete what this publish created (the new repo, or else the new branch); say what became of it."""
    if not created.repo and not created.branch:
        return NOTHING_PUBLISHED
    what = f"the repo {repo_id}" if created.repo else f"the branch {revision} of {repo_id}"
    try:
        if created.repo:
            api.delete_repo(repo_id, repo_type=created.repo_type)
        else:
            api.delete_branch(repo_id, branch=revision, repo_type=created.repo_type)
    except request_errors() as error:
        status = http_status(error)
        return (
            f"{NOTHING_PUBLISHED}, but {what}, which this publish created, could not be deleted "
            f"({'HTTP ' + str(status) if status else _one_line(error, 120)}): delete it by hand"
        )
    return f"{NOTHING_PUBLISHED}; {what}, which this publish created, was deleted again"


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
    repo_type: str = "dataset",
) -> str:
    """Create the repo and branch if needed, then upload `paths` of `folder` and delete `deletions` in one commit.

    LFS files are uploaded before the commit is made; if anything fails, no commit is made, and a repo
    or branch that this call created is deleted again (never one that existed before). The commit is
    refused when the branch moved since `state` was read, so a concurrent change is never overwritten.
    """
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete

    created = Created(repo_type=repo_type)
    try:
        _create_target(api, repo_id, revision, state, private, created)
        created.step = "uploading and committing the files"
        operations = [CommitOperationAdd(path_in_repo=path, path_or_fileobj=str(folder / path)) for path in paths]
        operations += [CommitOperationDelete(path_in_repo=path) for path in deletions]
        info = api.create_commit(
            repo_id,
            operations,
            commit_message=message,
            repo_type=repo_type,
            revision=revision,
            parent_commit=state.head,
        )
    except SddError:
        raise
    except request_errors() as error:
        outcome = _cleanup(api, repo_id, revision, created)
        if http_status(error) == 412:
            raise SddError(f"{repo_id}@{revision} changed while publishing; {outcome}; run the command again") from None
        raise hub_failure(error, created.step, repo_id, outcome) from None
    except (ValueError, RuntimeError) as error:  # invalid card metadata, failed LFS upload
        outcome = _cleanup(api, repo_id, revision, created)
        raise SddError(
            f"publishing to {repo_id} failed while {created.step} ({_one_line(error)}); {outcome}; "
            "fix what it names, then run the command again"
        ) from None
    except BaseException:  # interrupted: still take back what this call created
        _cleanup(api, repo_id, revision, created)
        raise
    return info.oid
