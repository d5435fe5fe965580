"""A small Hugging Face Hub look-alike for tests: dataset and model repos, commits, LFS uploads, downloads.

It serves the routes that `huggingface_hub`, `datasets` and `transformers` call to create and delete a repo,
upload files (regular and LFS), commit them, list and download them, create and delete branches and validate
card metadata. Dataset and model repos live in separate namespaces, as on the Hub (`/api/datasets/...`,
`/datasets/<id>/resolve/...` against `/api/models/...`, `/<id>/resolve/...`). A file travels through LFS when
its suffix says so or when it is larger than `HubState.lfs_threshold` bytes. Each commit is an immutable
snapshot (path -> bytes); branches point at commits. Failures can be injected per route.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

LFS_SUFFIXES = (".parquet", ".arrow", ".bin", ".safetensors")
SIZE_CATEGORIES = {
    "n<1K",
    "1K<n<10K",
    "10K<n<100K",
    "100K<n<1M",
    "1M<n<10M",
    "10M<n<100M",
    "100M<n<1B",
    "1B<n<10B",
    "10B<n<100B",
    "100B<n<1T",
    "n>1T",
}
FRONT_MATTER = re.compile(r"\A---\s*\n(.*?)\n---\s*(\n|\Z)", re.DOTALL)


def git_blob_id(content: bytes) -> str:
    """The git object id of a blob."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


@dataclass(frozen=True)
class Commit:
    """One immutable snapshot of a repo."""

    oid: str
    title: str
    files: dict[str, bytes]
    lfs: frozenset[str]
    created: float


@dataclass
class Repo:
    """A dataset or model repo: its commits (oldest first), branches and visibility."""

    repo_id: str
    owner: str
    private: bool
    kind: str = "dataset"
    commits: list[Commit] = field(default_factory=list)
    branches: dict[str, str] = field(default_factory=dict)

    def commit(self, revision: str) -> Commit | None:
        """The commit a branch name or commit id points at."""
        oid = self.branches.get(revision, revision)
        return next((commit for commit in self.commits if commit.oid == oid), None)


@dataclass
class Failure:
    """Fail the requests of one route kind after `after` successful ones, `times` times."""

    status: int
    after: int
    times: int
    seen: int = 0


def card_metadata_errors(content: str) -> list[str]:
    """What the Hub would refuse in a card's YAML metadata (empty when it is valid)."""
    match = FRONT_MATTER.match(content)
    if not match:
        return []
    try:
        metadata = yaml.safe_load(match.group(1)) or {}
    except yaml.YAMLError as error:
        return [f"YAML parse error: {error}"]
    if not isinstance(metadata, dict):
        return ["metadata must be a mapping"]
    errors = []
    license_value = metadata.get("license")
    if license_value is not None and not (isinstance(license_value, str) or _is_str_list(license_value)):
        errors.append("license must be a string or a list of strings")
    for key in ("tags", "task_categories", "source_datasets", "size_categories"):
        if key in metadata and not _is_str_list(metadata[key]):
            errors.append(f"{key} must be a list of strings")
    if "language" in metadata and not (isinstance(metadata["language"], str) or _is_str_list(metadata["language"])):
        errors.append("language must be a string or a list of strings")
    if _is_str_list(metadata.get("size_categories")):
        errors += [
            f"size_categories has an unknown value {value!r}"
            for value in metadata["size_categories"]
            if value not in SIZE_CATEGORIES
        ]
    if "pretty_name" in metadata and not isinstance(metadata["pretty_name"], str):
        errors.append("pretty_name must be a string")
    errors += _configs_errors(metadata.get("configs"))
    errors += _model_errors(metadata)
    return errors


def _model_errors(metadata: dict) -> list[str]:
    """What the Hub refuses in a model card: a base_model that is no repo id, a model-index it cannot read."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.repocard_data import model_index_to_eval_results
    from huggingface_hub.utils import validate_repo_id

    errors = []
    base_models = metadata.get("base_model")
    for base_model in base_models if isinstance(base_models, list) else [base_models] if base_models else []:
        try:
            validate_repo_id(base_model)
        except (HFValidationError, TypeError):
            errors.append(f"base_model {base_model!r} is not a valid model id")
    if "model-index" in metadata:
        try:
            _, results = model_index_to_eval_results(metadata["model-index"])
            if not results:
                errors.append("model-index holds no results")
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            errors.append(f"model-index cannot be read ({type(error).__name__}: {error})")
    return errors


def _card_data(text: str):
    """A card's metadata as the Hub lists it (None when it does not parse)."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return None


def _is_str_list(value) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _configs_errors(configs) -> list[str]:
    if configs is None:
        return []
    if not isinstance(configs, list):
        return ["configs must be a list"]
    errors, names, defaults = [], [], 0
    for entry in configs:
        if not isinstance(entry, dict) or not isinstance(entry.get("config_name"), str):
            errors.append("configs entries must have a config_name string")
            continue
        names.append(entry["config_name"])
        defaults += bool(entry.get("default"))
        data_files = entry.get("data_files")
        if data_files is None or isinstance(data_files, str) or _is_str_list(data_files):
            continue
        if not isinstance(data_files, list) or not all(
            isinstance(item, dict)
            and isinstance(item.get("split"), str)
            and (isinstance(item.get("path"), str) or _is_str_list(item.get("path")))
            for item in data_files
        ):
            errors.append(f"data_files of config {entry['config_name']} must list split and path entries")
    if len(set(names)) != len(names):
        errors.append("configs has duplicated config names")
    if defaults > 1:
        errors.append("configs has more than one default config")
    return errors


class HubState:
    """Everything the server knows: users (by token), repos, uploaded LFS objects, injected failures."""

    def __init__(self, tokens: dict[str, str]):
        self.tokens = tokens
        self.repos: dict[str, Repo] = {}
        """Dataset repos by id."""
        self.models: dict[str, Repo] = {}
        """Model repos by id (their own namespace, as on the Hub)."""
        self.lfs_threshold = 1_000_000
        """Files larger than this many bytes are uploaded through LFS, whatever their suffix (the Hub: 10 MB)."""
        self.lfs_objects: dict[str, bytes] = {}
        self.failures: dict[str, Failure] = {}
        self.requests: list[tuple[str, str, int]] = []
        self.lock = threading.Lock()

    def inject_failure(self, route: str, status: int = 500, after: int = 0, times: int = 1) -> None:
        """Make requests of `route` (commit, preupload, lfs-batch, lfs-upload, ...) fail with `status`."""
        self.failures[route] = Failure(status, after, times)

    def should_fail(self, route: str) -> int | None:
        """The status to fail this request of `route` with, if a failure is due."""
        failure = self.failures.get(route)
        if failure is None:
            return None
        failure.seen += 1
        if failure.after < failure.seen <= failure.after + failure.times:
            return failure.status
        return None

    def store(self, kind: str) -> dict[str, Repo]:
        """The repos of one kind (`dataset` or `model`) by id."""
        return self.models if kind == "model" else self.repos

    def create_repo(self, repo_id: str, owner: str, private: bool, kind: str = "dataset") -> Repo:
        """A new repo with the Hub's initial commit (a .gitattributes file)."""
        repo = Repo(repo_id, owner, private, kind)
        self.store(kind)[repo_id] = repo
        suffix = "safetensors" if kind == "model" else "parquet"
        self.add_commit(
            repo,
            "main",
            "initial commit",
            {".gitattributes": f"*.{suffix} filter=lfs diff=lfs merge=lfs -text\n".encode()},
            frozenset(),
        )
        return repo

    def add_commit(self, repo: Repo, branch: str, title: str, files: dict[str, bytes], lfs: frozenset[str]) -> Commit:
        """Record a snapshot as the new head of `branch`."""
        seed = f"{repo.repo_id}:{len(repo.commits)}:{title}:{time.time_ns()}".encode()
        commit = Commit(hashlib.sha1(seed).hexdigest(), title, dict(files), lfs, time.time())
        repo.commits.append(commit)
        repo.branches[branch] = commit.oid
        return commit


class HubError(Exception):
    """An HTTP error answer with the Hub's error headers."""

    def __init__(self, status: int, message: str, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


class HubHandler(BaseHTTPRequestHandler):
    """Routes one request to the matching handler method."""

    state: HubState
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # noqa: A002 - keep test output quiet
        pass

    def do_GET(self):
        self._dispatch("GET")

    def do_HEAD(self):
        self._dispatch("HEAD")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    def do_DELETE(self):
        self._dispatch("DELETE")

    API = r"/api/(?P<kind>datasets|models)/(?P<repo>[^/]+/[^/]+)"
    ROUTES = [
        ("GET", r"/api/whoami-v2", "whoami"),
        ("POST", r"/api/repos/create", "create_repo"),
        ("DELETE", r"/api/repos/delete", "delete_repo"),
        ("POST", r"/api/validate-yaml", "validate_yaml"),
        ("GET", API + r"(/revision/(?P<rev>[^/]+))?", "repo_info"),
        ("POST", API + r"/preupload/(?P<rev>[^/]+)", "preupload"),
        ("POST", API + r"/commit/(?P<rev>[^/]+)", "commit"),
        ("GET", API + r"/tree/(?P<rev>[^/]+)(/(?P<path>.*))?", "tree"),
        ("POST", API + r"/paths-info/(?P<rev>[^/]+)", "paths_info"),
        ("POST", API + r"/branch/(?P<branch>[^/]+)", "create_branch"),
        ("DELETE", API + r"/branch/(?P<branch>[^/]+)", "delete_branch"),
        ("GET", API + r"/refs", "refs"),
        ("GET", API + r"/commits/(?P<rev>[^/]+)", "commits"),
        ("POST", r"/(?P<kind>datasets)/(?P<repo>[^/]+/[^/]+)\.git/info/lfs/objects/batch", "lfs_batch"),
        ("POST", r"/(?P<repo>[^/]+/[^/]+)\.git/info/lfs/objects/batch", "lfs_batch"),
        ("PUT", r"/lfs-upload/(?P<oid>[0-9a-f]{64})", "lfs_upload"),
        ("POST", r"/lfs-verify/(?P<oid>[0-9a-f]{64})", "lfs_verify"),
        ("GET|HEAD", r"/(?P<kind>datasets)/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)", "resolve"),
        ("GET|HEAD", r"/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)", "resolve"),
    ]

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        self.query = parse_qs(url.query)
        self.body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            for methods, pattern, name in self.ROUTES:
                match = re.fullmatch(pattern, url.path)
                if method in methods.split("|") and match:
                    failure = self.state.should_fail(name.replace("_", "-"))
                    if failure:
                        raise HubError(failure, f"injected failure of {name}")
                    self.user = self._user()
                    params = {key: unquote(value) for key, value in match.groupdict().items() if value is not None}
                    if "repo" in params:  # /api/models/..., /<id>/resolve/...: a model repo
                        params["kind"] = "dataset" if params.get("kind") in ("datasets", "dataset") else "model"
                    with self.state.lock:
                        getattr(self, f"handle_{name}")(**params)
                    return
            raise HubError(404, f"no route for {method} {url.path}")
        except HubError as error:
            status = error.status
            headers = {"X-Error-Message": error.message}
            if error.code:
                headers["X-Error-Code"] = error.code
            self._send_json({"error": error.message}, status, headers)

    # --- helpers -----------------------------------------------------------------------------------

    def _user(self) -> str | None:
        header = self.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            return None
        token = header.removeprefix("Bearer ")
        if token not in self.state.tokens:
            raise HubError(401, "Invalid credentials in Authorization header")
        return self.state.tokens[token]

    def _require_user(self) -> str:
        if self.user is None:
            raise HubError(401, "You must be authenticated to do this")
        return self.user

    def _send(self, body: bytes, status: int = 200, headers: dict | None = None, content_type="application/json"):
        # Logged before the reply goes out, so a client that has its answer always finds its request logged.
        self.state.requests.append((self.command, urlsplit(self.path).path, status))
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        return status

    def _send_json(self, value, status: int = 200, headers: dict | None = None):
        return self._send(json.dumps(value).encode(), status, headers)

    def _base(self) -> str:
        return f"http://{self.headers.get('Host')}"

    def _repo(self, repo_id: str, write: bool = False, kind: str = "dataset") -> Repo:
        repo = self.state.store(kind).get(repo_id)
        if repo is None or (repo.private and self.user != repo.owner):
            raise HubError(404 if self.user else 401, "Repository not found", "RepoNotFound")
        if write and self._require_user() != repo.owner:
            raise HubError(403, "You don't have the rights to write to this repo")
        return repo

    def _commit(self, repo: Repo, revision: str) -> Commit:
        commit = repo.commit(revision)
        if commit is None:
            raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return commit

    def _entry(self, commit: Commit, path: str) -> dict:
        content = commit.files[path]
        entry = {"type": "file", "path": path, "size": len(content), "oid": git_blob_id(content)}
        if path in commit.lfs:
            entry["lfs"] = {"oid": hashlib.sha256(content).hexdigest(), "size": len(content), "pointerSize": 134}
        return entry

    def _folders(self, commit: Commit) -> set[str]:
        return {"/".join(path.split("/")[:depth]) for path in commit.files for depth in range(1, path.count("/") + 1)}

    # --- routes ------------------------------------------------------------------------------------

    def handle_whoami(self):
        user = self._require_user()
        return self._send_json(
            {
                "type": "user",
                "name": user,
                "fullname": user,
                "orgs": [],
                "auth": {"type": "access_token", "accessToken": {"displayName": "test", "role": "write"}},
            }
        )

    def handle_create_repo(self):
        user = self._require_user()
        payload = json.loads(self.body)
        kind = payload.get("type") or "model"
        if kind not in ("dataset", "model"):
            raise HubError(400, "this test server only holds dataset and model repos")
        namespace = payload.get("organization") or user
        repo_id = f"{namespace}/{payload['name']}"
        if repo_id in self.state.store(kind):
            raise HubError(409, f"You already created this {kind} repo")
        if namespace != user:
            raise HubError(403, f"You don't have the rights to create a {kind} under the namespace {namespace}")
        private = payload.get("visibility") == "private" or bool(payload.get("private"))
        self.state.create_repo(repo_id, user, private, kind)
        prefix = "datasets/" if kind == "dataset" else ""
        return self._send_json({"url": f"{self._base()}/{prefix}{repo_id}", "name": repo_id})

    def handle_validate_yaml(self):
        errors = card_metadata_errors(json.loads(self.body)["content"])
        if errors:
            return self._send_json({"errors": [{"message": error} for error in errors]}, 400)
        return self._send_json({"warnings": []})

    def handle_repo_info(self, kind, repo, rev="main"):
        repository = self._repo(repo, kind=kind)
        commit = self._commit(repository, rev)
        card = commit.files.get("README.md", b"").decode()
        match = FRONT_MATTER.match(card)
        return self._send_json(
            {
                "id": repo,
                "author": repository.owner,
                "sha": commit.oid,
                "private": repository.private,
                "lastModified": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(commit.created)),
                "tags": [],
                "downloads": 0,
                "likes": 0,
                "gated": False,
                "disabled": False,
                "cardData": _card_data(match.group(1)) if match else None,
                "siblings": [{"rfilename": path} for path in sorted(commit.files)],
            }
        )

    def handle_preupload(self, kind, repo, rev):
        repository = self._repo(repo, write=True, kind=kind)
        commit = repository.commit(rev)
        files = []
        for item in json.loads(self.body)["files"]:
            path = item["path"]
            lfs = path.endswith(LFS_SUFFIXES) or item["size"] > self.state.lfs_threshold
            existing = commit.files.get(path) if commit else None
            oid = None
            if existing is not None:
                oid = hashlib.sha256(existing).hexdigest() if path in commit.lfs else git_blob_id(existing)
            files.append({"path": path, "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False, "oid": oid})
        return self._send_json({"files": files, "commitOid": commit.oid if commit else None})

    def handle_lfs_batch(self, kind, repo):
        self._repo(repo, write=True, kind=kind)
        objects = []
        for item in json.loads(self.body)["objects"]:
            entry = {"oid": item["oid"], "size": item["size"], "authenticated": True}
            if item["oid"] not in self.state.lfs_objects:
                entry["actions"] = {
                    "upload": {"href": f"{self._base()}/lfs-upload/{item['oid']}"},
                    "verify": {"href": f"{self._base()}/lfs-verify/{item['oid']}"},
                }
            objects.append(entry)
        return self._send_json(
            {"transfer": "basic", "objects": objects}, headers={"Content-Type": "application/vnd.git-lfs+json"}
        )

    def handle_lfs_upload(self, oid):
        if hashlib.sha256(self.body).hexdigest() != oid:
            raise HubError(400, "uploaded content does not match its oid")
        self.state.lfs_objects[oid] = self.body
        return self._send(b"", 200)

    def handle_lfs_verify(self, oid):
        if oid not in self.state.lfs_objects:
            raise HubError(404, f"LFS object {oid} was never uploaded")
        return self._send_json({"success": True})

    def handle_commit(self, kind, repo, rev):
        repository = self._repo(repo, write=True, kind=kind)
        parent = self._commit(repository, rev)
        if rev not in repository.branches:
            raise HubError(400, f"can only commit to a branch, not {rev}")
        files, lfs = dict(parent.files), set(parent.lfs)
        title = ""
        for line in self.body.decode().splitlines():
            item = json.loads(line)
            key, value = item["key"], item["value"]
            if key == "header":
                title = value["summary"]
                if value.get("parentCommit") and value["parentCommit"] != parent.oid:
                    raise HubError(412, "A commit has happened since the parent commit")
            elif key == "file":
                files[value["path"]] = base64.b64decode(value["content"])
                lfs.discard(value["path"])
            elif key == "lfsFile":
                if value["oid"] not in self.state.lfs_objects:
                    raise HubError(422, f"LFS file {value['path']} was not uploaded")
                files[value["path"]] = self.state.lfs_objects[value["oid"]]
                lfs.add(value["path"])
            elif key == "deletedFile":
                if files.pop(value["path"], None) is None:
                    raise HubError(404, "A file with this name doesn't exist", "EntryNotFound")
            elif key == "deletedFolder":
                prefix = value["path"].rstrip("/") + "/"
                files = {path: content for path, content in files.items() if not path.startswith(prefix)}
            else:
                raise HubError(400, f"unknown commit operation {key}")
        errors = card_metadata_errors(files.get("README.md", b"").decode())
        if errors:
            raise HubError(400, "Invalid metadata in README.md: " + "; ".join(errors))
        commit = self.state.add_commit(repository, rev, title, files, frozenset(lfs & set(files)))
        return self._send_json(
            {
                "commitUrl": f"{self._base()}/{'datasets/' if kind == 'dataset' else ''}{repo}/commit/{commit.oid}",
                "commitOid": commit.oid,
                "success": True,
            }
        )

    def handle_tree(self, kind, repo, rev, path=""):
        commit = self._commit(self._repo(repo, kind=kind), rev)
        path = path.strip("/")
        recursive = self.query.get("recursive", ["false"])[0].lower() in ("1", "true")
        prefix = f"{path}/" if path else ""
        folders = self._folders(commit)
        if path and path not in folders:
            raise HubError(404, f"{path} does not exist", "EntryNotFound")
        entries = []
        for name in sorted(folders | set(commit.files)):
            if not name.startswith(prefix) or (not recursive and "/" in name[len(prefix) :]):
                continue
            entries.append(
                self._entry(commit, name)
                if name in commit.files
                else {"type": "directory", "path": name, "size": 0, "oid": git_blob_id(name.encode())}
            )
        return self._send_json(entries)

    def handle_paths_info(self, kind, repo, rev):
        commit = self._commit(self._repo(repo, kind=kind), rev)
        form = parse_qs(self.body.decode())
        paths = form.get("paths", [])
        if not paths and self.body.startswith(b"{"):
            paths = json.loads(self.body).get("paths", [])
        folders = self._folders(commit)
        entries = [
            self._entry(commit, path)
            if path in commit.files
            else {"type": "directory", "path": path, "size": 0, "oid": git_blob_id(path.encode())}
            for path in paths
            if path in commit.files or path in folders
        ]
        return self._send_json(entries)

    def handle_create_branch(self, kind, repo, branch):
        repository = self._repo(repo, write=True, kind=kind)
        if branch in repository.branches:
            raise HubError(409, f"Branch {branch} already exists")
        payload = json.loads(self.body or b"{}")
        start = self._commit(repository, payload.get("startingPoint") or "main")
        repository.branches[branch] = start.oid
        return self._send_json({})

    def handle_delete_repo(self):
        user = self._require_user()
        payload = json.loads(self.body)
        kind = payload.get("type") or "model"
        repo_id = f"{payload.get('organization') or user}/{payload['name']}"
        self._repo(repo_id, write=True, kind=kind)
        del self.state.store(kind)[repo_id]
        return self._send_json({})

    def handle_delete_branch(self, kind, repo, branch):
        repository = self._repo(repo, write=True, kind=kind)
        if branch == "main":
            raise HubError(403, "Cannot delete the main branch")
        if repository.branches.pop(branch, None) is None:
            raise HubError(404, f"Invalid rev id: {branch}", "RevisionNotFound")
        return self._send_json({})

    def handle_refs(self, kind, repo):
        repository = self._repo(repo, kind=kind)
        branches = [
            {"name": name, "ref": f"refs/heads/{name}", "targetCommit": oid}
            for name, oid in repository.branches.items()
        ]
        return self._send_json({"branches": branches, "tags": [], "converts": []})

    def handle_commits(self, kind, repo, rev):
        repository = self._repo(repo, kind=kind)
        head = self._commit(repository, rev)
        history = repository.commits[: repository.commits.index(head) + 1]
        return self._send_json(
            [
                {
                    "id": commit.oid,
                    "title": commit.title,
                    "message": "",
                    "authors": [],
                    "date": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(commit.created)),
                }
                for commit in reversed(history)
            ]
        )

    def handle_resolve(self, kind, repo, rev, path):
        commit = self._commit(self._repo(repo, kind=kind), rev)
        if path not in commit.files:
            raise HubError(404, "Entry not found", "EntryNotFound")
        content = commit.files[path]
        headers = {"ETag": f'"{git_blob_id(content)}"', "X-Repo-Commit": commit.oid, "Accept-Ranges": "bytes"}
        if path in commit.lfs:
            headers["X-Linked-Etag"] = f'"{hashlib.sha256(content).hexdigest()}"'
            headers["X-Linked-Size"] = str(len(content))
        byte_range = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        if byte_range:
            start = int(byte_range.group(1))
            end = int(byte_range.group(2)) if byte_range.group(2) else len(content) - 1
            headers["Content-Range"] = f"bytes {start}-{min(end, len(content) - 1)}/{len(content)}"
            return self._send(content[start : end + 1], 206, headers, "application/octet-stream")
        return self._send(content, 200, headers, "application/octet-stream")


class HubServer:
    """The server on 127.0.0.1 at a free port, running in a background thread."""

    def __init__(self, tokens: dict[str, str]):
        self.state = HubState(tokens)
        handler = type("BoundHubHandler", (HubHandler,), {"state": self.state})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> HubServer:
        self.thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def repo(self, repo_id: str, kind: str = "dataset") -> Repo:
        """The stored state of a repo (KeyError when it does not exist)."""
        return self.state.store(kind)[repo_id]

    def files(self, repo_id: str, revision: str = "main", kind: str = "dataset") -> dict[str, bytes]:
        """The files of a repo at a revision."""
        return self.repo(repo_id, kind).commit(revision).files

    def not_found(self) -> list[tuple[str, str]]:
        """Requests that matched no route (to discover what a client calls)."""
        return [(method, path) for method, path, status in self.state.requests if status == 404]
