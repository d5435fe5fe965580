"""Publishing when things go wrong: Hub errors as one line, what a failed push takes back, damaged targets."""

import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hub_fixtures import USER, cli_error

from sdd_data import output_folder
from sdd_data.errors import SddError
from sdd_data.publish.stage import PublishConfig, publish

REPO = f"{USER}/distilled"


@pytest.fixture
def no_retry_waits(monkeypatch):
    """huggingface_hub waits up to 23 s between retries of a download; tests need not."""
    import huggingface_hub.utils._http as http

    monkeypatch.setattr(http.time, "sleep", lambda seconds: None)


def hub_snapshot(hub) -> dict:
    return {
        repo_id: (list(repo.commits), dict(repo.branches), repo.private) for repo_id, repo in hub.state.repos.items()
    }


def test_pushing_to_another_users_repo_says_the_token_lacks_write_access(hub, distilled, capsys):
    hub.state.create_repo("someone/theirs", "someone", private=False)
    before = hub_snapshot(hub)
    error = cli_error(capsys, "--distilled", str(distilled), "--repo-id", "someone/theirs")
    assert "lacks write access to someone/theirs" in error and "HTTP 403" in error
    assert "nothing was published" in error and "token with write access" in error
    assert hub_snapshot(hub) == before


def test_creating_a_repo_in_another_namespace_says_the_token_lacks_write_access(hub, distilled, capsys):
    error = cli_error(capsys, "--distilled", str(distilled), "--repo-id", "some-org/new")
    assert "lacks write access to some-org/new" in error and "while creating the repo" in error
    assert hub.state.repos == {}


@pytest.mark.parametrize(
    "route, revision, existing",
    [
        ("whoami", "main", False),
        ("repo-info", "main", True),
        ("resolve", "main", True),
        ("create-repo", "main", False),
        ("create-branch", "dev", True),
        ("preupload", "main", True),
        ("commit", "main", True),
    ],
)
def test_a_hub_server_error_is_one_line_that_says_retry_later(
    hub, distilled, capsys, no_retry_waits, route, revision, existing
):
    if existing:
        publish(PublishConfig(distilled=str(distilled), repo_id=REPO))
    before = hub_snapshot(hub)
    hub.state.inject_failure(route, status=503, times=100)
    args = ["--distilled", str(distilled), "--repo-id", REPO, "--revision", revision, "--config-name", "second"]
    error = cli_error(capsys, *args)
    assert "HTTP 503" in error and "run the same command again later" in error and "nothing was published" in error
    assert hub_snapshot(hub) == before


@pytest.mark.parametrize("with_token", [False, True])
def test_an_unreachable_hub_under_a_dry_run_is_one_line(hub, distilled, tmp_path, monkeypatch, capsys, with_token):
    import huggingface_hub.constants as constants

    if not with_token:
        monkeypatch.delenv("HF_TOKEN")
        monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    hub.httpd.shutdown()
    hub.httpd.server_close()
    folder = tmp_path / "dry"
    error = cli_error(
        capsys, "--distilled", str(distilled), "--repo-id", REPO, "--dry-run", "--output-dir", str(folder)
    )
    assert ("unreachable" in error or "could not be reached" in error) and hub.endpoint in error
    assert not folder.exists()


@pytest.mark.parametrize("route", ["preupload", "lfs-upload", "commit"])
def test_a_new_repo_is_deleted_when_its_first_commit_fails(hub, distilled, no_retry_waits, route):
    hub.state.inject_failure(route, status=500, times=100)
    with pytest.raises(SddError, match=f"nothing was published; the repo {REPO}, which this publish created, was del"):
        publish(PublishConfig(distilled=str(distilled), repo_id=REPO))
    assert hub.state.repos == {}


def test_a_new_branch_is_deleted_when_its_first_commit_fails(hub, distilled):
    publish(PublishConfig(distilled=str(distilled), repo_id=REPO))
    before = hub_snapshot(hub)
    hub.state.inject_failure("commit", status=500, times=100)
    with pytest.raises(SddError, match=f"the branch dev of {REPO}, which this publish created, was deleted again"):
        publish(PublishConfig(distilled=str(distilled), repo_id=REPO, revision="dev", config_name="second"))
    assert hub_snapshot(hub) == before and set(hub.repo(REPO).branches) == {"main"}


def test_an_existing_branch_is_never_deleted(hub, distilled):
    publish(PublishConfig(distilled=str(distilled), repo_id=REPO, revision="dev"))
    before = hub_snapshot(hub)
    hub.state.inject_failure("commit", status=500, times=100)
    with pytest.raises(SddError) as raised:
        publish(PublishConfig(distilled=str(distilled), repo_id=REPO, revision="dev", config_name="second"))
    assert "deleted" not in str(raised.value) and "nothing was published" in str(raised.value)
    assert hub_snapshot(hub) == before


def test_a_created_repo_that_cannot_be_deleted_is_named(hub, distilled):
    hub.state.inject_failure("commit", status=500, times=100)
    hub.state.inject_failure("delete-repo", status=500, times=100)
    with pytest.raises(SddError, match=rf"but the repo {REPO}, which this publish created, could not be deleted"):
        publish(PublishConfig(distilled=str(distilled), repo_id=REPO))
    assert list(hub.state.repos) == [REPO]


def test_a_repo_that_exists_out_of_sight_is_left_alone(hub, distilled, capsys):
    hub.state.create_repo(REPO, "someone-else", private=True)  # invisible to the token: reads say 404
    before = hub_snapshot(hub)
    error = cli_error(capsys, "--distilled", str(distilled), "--repo-id", REPO)
    assert "HTTP 409" in error and "exists" in error and "nothing was published" in error
    assert hub_snapshot(hub) == before


def test_a_tag_or_commit_as_revision_is_refused(hub, distilled):
    publish(PublishConfig(distilled=str(distilled), repo_id=REPO))
    head = hub.repo(REPO).branches["main"]
    before = hub_snapshot(hub)
    with pytest.raises(SddError, match="is a tag or a commit, not a branch"):
        publish(PublishConfig(distilled=str(distilled), repo_id=REPO, revision=head))
    assert hub_snapshot(hub) == before


@pytest.mark.parametrize(
    "repo_id", ["tester/bad--name", "tester/.hidden", "tester/name.git", "tester/" + "x" * 97, "tester", "a/b/c"]
)
def test_an_invalid_repo_id_is_refused_before_any_request(hub, distilled, repo_id):
    hub.state.requests.clear()
    with pytest.raises(SddError, match="--repo-id .* is not a valid Hub repo id"):
        publish(PublishConfig(distilled=str(distilled), repo_id=repo_id))
    assert hub.state.requests == []


@pytest.mark.parametrize("revision", ["", "a b", "feature..x", "-x", "x.lock", "x/", "/x", "a~1", "HEAD@{1}", "a:b"])
def test_an_invalid_revision_is_refused_before_any_request(hub, distilled, revision):
    hub.state.requests.clear()
    with pytest.raises(SddError, match="--revision .* is not a valid branch name"):
        publish(PublishConfig(distilled=str(distilled), repo_id=REPO, revision=revision))
    assert hub.state.requests == []


@pytest.mark.parametrize(
    "files, names",
    [
        ({"sdd_data.json": b"{not json"}, "sdd_data.json of tester/distilled@main is not readable JSON"),
        ({"sdd_data.json": b'{"configs": []}'}, "sdd_data.json of tester/distilled@main must hold"),
        (
            {"sdd_data.json": b'{"configs": {"old": {"splits": {}}}}'},
            "sdd_data.json of tester/distilled@main holds config 'old' without",
        ),
        ({"README.md": b"---\nlicense: [mit\n---\nbody\n"}, "README.md of tester/distilled@main has unreadable YAML"),
        ({"README.md": b"---\nconfigs: oops\n---\nbody\n"}, "README.md of tester/distilled@main: the card's YAML"),
    ],
)
def test_damaged_files_in_the_repo_are_named_in_one_line(hub, distilled, capsys, files, names):
    repo = hub.state.create_repo(REPO, USER, private=False)
    hub.state.add_commit(repo, "main", "damage", {**repo.commit("main").files, **files}, frozenset())
    before = hub_snapshot(hub)
    error = cli_error(capsys, "--distilled", str(distilled), "--repo-id", REPO)
    assert names in error and "nothing was published" in error
    assert hub_snapshot(hub) == before


def test_a_dry_run_that_fails_midway_leaves_no_folder(hub, distilled, tmp_path, monkeypatch):
    calls = []
    write_table = pq.write_table

    def failing_second_write(*args, **kwargs):
        calls.append(args)
        if len(calls) == 2:
            raise OSError("disk full")
        return write_table(*args, **kwargs)

    monkeypatch.setattr(pq, "write_table", failing_second_write)
    folder = tmp_path / "dry"
    with pytest.raises(SddError, match="disk full"):
        publish(PublishConfig(distilled=str(distilled), repo_id=REPO, dry_run=True, output_dir=str(folder)))
    assert not folder.exists() and [path.name for path in tmp_path.iterdir() if path.name.startswith(".dry")] == []
    monkeypatch.setattr(pq, "write_table", write_table)
    publish(PublishConfig(distilled=str(distilled), repo_id=REPO, dry_run=True, output_dir=str(folder)))


def test_a_dry_run_into_a_file_is_refused(hub, distilled, tmp_path):
    (tmp_path / "file").write_text("mine")
    with pytest.raises(SddError, match="is not an empty folder"):
        publish(PublishConfig(distilled=str(distilled), repo_id=REPO, dry_run=True, output_dir=str(tmp_path / "file")))
    assert (tmp_path / "file").read_text() == "mine"


# --- local folders ------------------------------------------------------------------------------------


def published_files(folder: Path) -> dict[str, bytes]:
    """Every file of a folder by relative path (empty when it is missing)."""
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def leftovers(parent: Path) -> list[str]:
    return sorted(path.name for path in parent.iterdir() if ".partial-" in path.name)


@pytest.fixture
def two_configs(distilled, tmp_path) -> Path:
    """A local folder published to twice: configs `first` and `second`."""
    folder = tmp_path / "published"
    for name in ("first", "second"):
        publish(PublishConfig(distilled=str(distilled), output_dir=str(folder), config_name=name))
    return folder


def moves(monkeypatch, around) -> None:
    """Route every rename of a folder or file through `around(real, *args)`."""
    for module, name in ((os, "rename"), (os, "replace"), (output_folder, "_exchange")):
        real = getattr(module, name, None)
        if real is not None:
            monkeypatch.setattr(module, name, lambda *args, real=real, **kwargs: around(real, *args, **kwargs))


def test_a_local_publish_shows_the_old_or_the_new_folder_at_every_step(distilled, two_configs, monkeypatch):
    old, seen = published_files(two_configs), []

    def watched(real, *args, **kwargs):
        seen.append(published_files(two_configs))
        result = real(*args, **kwargs)
        seen.append(published_files(two_configs))
        return result

    moves(monkeypatch, watched)
    publish(PublishConfig(distilled=str(distilled), output_dir=str(two_configs), config_name="first", shard_rows=2))
    new = published_files(two_configs)
    assert "data/first/train-00002-of-00003.parquet" in new and "data/second/train-00000-of-00001.parquet" in new
    assert seen and all(state in (old, new) for state in seen)  # a kill between any two steps leaves one of them
    assert leftovers(two_configs.parent) == []


def test_a_local_publish_that_fails_to_land_leaves_the_old_folder(distilled, two_configs, monkeypatch):
    old = published_files(two_configs)

    def failing(real, *args, **kwargs):
        raise OSError(28, "No space left on device")

    moves(monkeypatch, failing)
    with pytest.raises(SddError, match=r"cannot write .*published.*No space left.*nothing was published"):
        publish(PublishConfig(distilled=str(distilled), output_dir=str(two_configs), config_name="first", shard_rows=2))
    assert published_files(two_configs) == old and leftovers(two_configs.parent) == []


def test_a_local_publish_that_fails_while_staging_leaves_the_old_folder(distilled, two_configs, monkeypatch):
    old, calls, write_table = published_files(two_configs), [], pq.write_table

    def failing_second_write(*args, **kwargs):
        calls.append(args)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return write_table(*args, **kwargs)

    monkeypatch.setattr(pq, "write_table", failing_second_write)
    with pytest.raises(SddError, match="No space left"):
        publish(PublishConfig(distilled=str(distilled), output_dir=str(two_configs), config_name="first", shard_rows=2))
    assert published_files(two_configs) == old and leftovers(two_configs.parent) == []


def test_publishing_through_a_link_keeps_the_link(distilled, two_configs, tmp_path):
    link = tmp_path / "link"
    link.symlink_to(two_configs)
    publish(PublishConfig(distilled=str(distilled), output_dir=str(link), config_name="third"))
    assert link.is_symlink() and (two_configs / "data" / "third").is_dir() and (two_configs / "data" / "first").is_dir()


def test_an_output_dir_that_is_a_file_is_refused(distilled, tmp_path, capsys):
    (tmp_path / "file").write_text("mine")
    error = cli_error(capsys, "--distilled", str(distilled), "--output-dir", str(tmp_path / "file"))
    assert "is a file" in error and (tmp_path / "file").read_text() == "mine"


def test_an_output_dir_of_another_stage_is_left_alone(distilled, tmp_path, capsys):
    select_output = tmp_path / "selected"
    select_output.mkdir()
    (select_output / "outcome.parquet").write_bytes(b"PAR1")
    (select_output / "sdd_data.json").write_text('{"counts": {"selected": 3}}')
    before = published_files(select_output)
    error = cli_error(capsys, "--distilled", str(distilled), "--output-dir", str(select_output))
    assert "is a select output, not a published folder" in error
    assert published_files(select_output) == before


def test_a_damaged_sdd_data_json_in_the_output_dir_is_named(distilled, two_configs, capsys):
    (two_configs / "sdd_data.json").write_text('{"configs": {"first": ')
    before = published_files(two_configs)
    error = cli_error(capsys, "--distilled", str(distilled), "--output-dir", str(two_configs))
    assert f"{two_configs / 'sdd_data.json'} is not readable JSON" in error
    assert published_files(two_configs) == before


# --- damaged inputs -----------------------------------------------------------------------------------


def test_a_missing_input_folder_is_named(tmp_path, capsys):
    error = cli_error(capsys, "--distilled", str(tmp_path / "nowhere"), "--output-dir", str(tmp_path / "out"))
    assert "nowhere does not exist" in error


def test_an_input_of_another_stage_is_named(tmp_path, capsys):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    error = cli_error(capsys, "--distilled", str(tmp_path / "model"), "--output-dir", str(tmp_path / "out"))
    assert "neither a distill run nor a select output (a prune, train or merge output)" in error


@pytest.mark.parametrize(
    "damage, names",
    [
        (lambda run: (run / "stats.json").write_text("{oops"), "stats.json is not readable JSON"),
        (lambda run: (run / "stats.json").write_text("[1, 2]"), "stats.json must hold a JSON object"),
        (
            lambda run: (run / "stats.json").write_text(
                json.dumps({**json.loads((run / "stats.json").read_text()), "teacher": {"revision": None}})
            ),
            "stats.json lacks a valid `teacher.name`",
        ),
        (
            lambda run: (run / "stats.json").write_text(
                json.dumps({**json.loads((run / "stats.json").read_text()), "rows_in": "six"})
            ),
            "stats.json lacks a valid `rows_in`",
        ),
        (lambda run: (run / "distilled.parquet").write_bytes(b"PAR1 truncated"), "cannot read its Parquet data"),
        (
            lambda run: pq.write_table(pa.table({"id": ["x"], "odd": [1]}), run / "dropped.parquet"),
            "the dropped rows do not have the kept rows' columns",
        ),
    ],
)
def test_a_damaged_distill_run_is_named_in_one_line(distilled, tmp_path, capsys, damage, names):
    damage(distilled)
    error = cli_error(capsys, "--distilled", str(distilled), "--output-dir", str(tmp_path / "out"))
    assert names in error and str(distilled) in error
    assert not (tmp_path / "out").exists()


@pytest.fixture
def selected(distilled, tiny_llama_path, tmp_path) -> Path:
    from test_artifacts import random_selection

    return random_selection(distilled, tiny_llama_path, tmp_path)


def rewrite_json(path: Path, change) -> None:
    values = json.loads(path.read_text())
    change(values)
    path.write_text(json.dumps(values))


@pytest.mark.parametrize(
    "damage, names",
    [
        (lambda folder: (folder / "report.json").write_text("{oops"), "report.json is not readable JSON"),
        (
            lambda folder: (folder / "report.json").write_text('{"clusters": "many"}'),
            "report.json: `clusters` must be a list of rows",
        ),
        (
            lambda folder: rewrite_json(
                folder / "sdd_data.json", lambda values: values["source"]["distill_stats"].pop("template")
            ),
            "sdd_data.json (source.distill_stats) lacks a valid `template`",
        ),
        (
            lambda folder: rewrite_json(
                folder / "sdd_data.json", lambda values: values["source"].update(distill_stats=["x"])
            ),
            "sdd_data.json (source.distill_stats) must be a JSON object",
        ),
        (
            lambda folder: next((folder / "data").glob("*.arrow")).write_bytes(b"not arrow"),
            "cannot read the saved dataset",
        ),
        (lambda folder: (folder / "data" / "state.json").write_text("[]"), "cannot read the saved dataset"),
    ],
)
def test_a_damaged_select_output_is_named_in_one_line(selected, tmp_path, capsys, damage, names):
    damage(selected)
    error = cli_error(capsys, "--distilled", str(selected), "--output-dir", str(tmp_path / "out"))
    assert names in error and str(selected) in error
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("endpoint", ["http://127.0.0.1:port", "not a url", "ftp://hub.example"])
@pytest.mark.parametrize("dry_run", [False, True])
def test_an_hf_endpoint_that_is_no_address_is_named(hub, distilled, tmp_path, monkeypatch, capsys, endpoint, dry_run):
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    dry = ["--dry-run", "--output-dir", str(tmp_path / "dry")] if dry_run else []
    error = cli_error(capsys, "--distilled", str(distilled), "--repo-id", REPO, *dry)
    assert f"HF_ENDPOINT is {endpoint!r}, which is not an http(s) address" in error


def test_an_interrupted_first_push_takes_back_the_repo_it_created(hub, distilled, monkeypatch):
    from huggingface_hub import HfApi

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(HfApi, "create_commit", interrupted)
    with pytest.raises(KeyboardInterrupt):
        publish(PublishConfig(distilled=str(distilled), repo_id=REPO))
    assert hub.state.repos == {}


def test_two_local_publishes_at_once_keep_both_configs(distilled, tmp_path, monkeypatch):
    import threading
    import time

    from sdd_data.publish import local_folder

    read_folder = local_folder.read_folder

    def slow_read(*args, **kwargs):  # widen the window between reading the folder and replacing it
        state = read_folder(*args, **kwargs)
        time.sleep(0.5)
        return state

    monkeypatch.setattr(local_folder, "read_folder", slow_read)
    folder, errors = tmp_path / "published", []

    def publish_config(name: str) -> None:
        try:
            publish(PublishConfig(distilled=str(distilled), output_dir=str(folder), config_name=name))
        except Exception as error:  # noqa: BLE001 -- reported by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=publish_config, args=(name,)) for name in ("one", "two")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert set(json.loads((folder / "sdd_data.json").read_text())["configs"]) == {"one", "two"}
    assert {path.name for path in (folder / "data").iterdir()} == {"one", "two"}
