"""Publishing: local saves and Hub pushes (against the local Hub server), merging, atomicity and auth."""

import json
import logging

import datasets
import pyarrow.parquet as pq
import pytest
from hub_fixtures import TOKEN, USER
from huggingface_hub import DatasetCard, DatasetCardData, HfApi

from sdd_data.cli import main
from sdd_data.errors import SddError
from sdd_data.publish.stage import PublishConfig, default_config_name, publish

REPO = f"{USER}/distilled"


def rows(folder, name):
    return sorted(pq.read_table(folder / name).to_pylist(), key=lambda row: row["id"])


def load(path, config, split, tmp_path, **options):
    dataset = datasets.load_dataset(path, config, split=split, cache_dir=str(tmp_path / "cache"), **options)
    return sorted(dataset.to_list(), key=lambda row: row["id"])


def card_of(files):
    return DatasetCard(files["README.md"].decode())


def test_a_push_lands_in_one_commit_and_loads_back(hub, distilled, tmp_path, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    result = publish(PublishConfig(distilled=str(distilled), repo_id=REPO, license="mit", source_license="mit"))

    repo = hub.repo(REPO)
    assert len(repo.commits) == 2 and repo.commits[-1].oid == result.commit  # the repo's first commit, then ours
    files = hub.files(REPO)
    assert sorted(files) == [
        ".gitattributes",
        "README.md",
        "data/gsm8k/dropped-00000-of-00001.parquet",
        "data/gsm8k/train-00000-of-00001.parquet",
        "sdd_data.json",
    ]
    assert {path for path in repo.commits[-1].lfs} == {path for path in files if path.endswith(".parquet")}
    assert load(REPO, "gsm8k", "train", tmp_path) == rows(distilled, "distilled.parquet")
    assert [row["id"] for row in load(REPO, "gsm8k", "dropped", tmp_path)] == ["empty"]

    card = card_of(files)
    assert card.data.license == "mit" and card.data.pretty_name == "distilled"
    assert card.data.configs == [
        {
            "config_name": "gsm8k",
            "data_files": [
                {"split": "train", "path": "data/gsm8k/train-*"},
                {"split": "dropped", "path": "data/gsm8k/dropped-*"},
            ],
        }
    ]
    assert card.data.size_categories == ["n<1K"] and card.data.task_categories == ["text-generation"]
    assert {"self-distillation", "pruning-recovery", "sdd-data"} <= set(card.data.tags)
    assert "| `original` | `answer_mismatch` | 1 |" in card.text and "(license: mit)" in card.text
    provenance = json.loads(files["sdd_data.json"])["configs"]["gsm8k"]
    assert provenance["splits"] == {"train": 5, "dropped": 1} and provenance["teacher"]["name"] == "teacher"
    assert str(tmp_path) not in files["sdd_data.json"].decode() + card.content  # no local paths published
    logs = caplog.text + "".join(capsys.readouterr())
    assert TOKEN not in logs and all(TOKEN.encode() not in content for content in files.values())


def test_a_second_config_keeps_the_first(hub, distilled, tmp_path):
    publish(PublishConfig(distilled=str(distilled), repo_id=REPO, pretty_name="Distilled math"))
    publish(PublishConfig(distilled=str(distilled), repo_id=REPO, config_name="again", include_dropped=False))

    files = hub.files(REPO)
    card = card_of(files)
    assert [entry["config_name"] for entry in card.data.configs] == ["gsm8k", "again"]
    assert card.data.pretty_name == "Distilled math"  # kept from the card
    assert card.text.count("## Config `gsm8k`") == 1 and card.text.count("## Config `again`") == 1
    assert set(json.loads(files["sdd_data.json"])["configs"]) == {"gsm8k", "again"}
    assert (
        "data/again/train-00000-of-00001.parquet" in files and "data/again/dropped-00000-of-00001.parquet" not in files
    )
    assert load(REPO, "gsm8k", "train", tmp_path) == load(REPO, "again", "train", tmp_path)


def test_republishing_a_config_replaces_its_files(hub, distilled):
    publish(PublishConfig(distilled=str(distilled), repo_id=REPO, shard_rows=2))
    assert len([path for path in hub.files(REPO) if path.startswith("data/gsm8k/train-")]) == 3
    result = publish(PublishConfig(distilled=str(distilled), repo_id=REPO))
    assert result.deleted == [f"data/gsm8k/train-0000{index}-of-00003.parquet" for index in range(3)]
    assert [path for path in hub.files(REPO) if path.startswith("data/gsm8k/train-")] == [
        "data/gsm8k/train-00000-of-00001.parquet"
    ]
    assert card_of(hub.files(REPO)).text.count("## Config `gsm8k`") == 1


def test_private_repos_and_branches(hub, distilled, tmp_path):
    publish(PublishConfig(distilled=str(distilled), repo_id=REPO, private=True, revision="dev"))
    repo = hub.repo(REPO)
    assert repo.private and set(repo.branches) == {"main", "dev"}
    assert "README.md" not in hub.files(REPO, "main") and "README.md" in hub.files(REPO, "dev")
    assert HfApi(token=TOKEN).dataset_info(REPO).private
    with pytest.raises(Exception, match="Repository Not Found|401"):
        HfApi(token=False).dataset_info(REPO)
    assert len(load(REPO, "gsm8k", "train", tmp_path, revision="dev")) == 5


@pytest.mark.parametrize(
    "route, status", [("commit", 500), ("lfs-upload", 403), ("lfs-batch", 403), ("preupload", 403)]
)
def test_a_failure_midway_leaves_the_repo_unchanged(hub, distilled, route, status):
    publish(PublishConfig(distilled=str(distilled), repo_id=REPO))
    before = (list(hub.repo(REPO).commits), dict(hub.repo(REPO).branches), dict(hub.files(REPO)))
    hub.state.inject_failure(route, status=status, times=10)
    with pytest.raises(SddError, match="nothing was published"):
        publish(PublishConfig(distilled=str(distilled), repo_id=REPO, config_name="second", shard_rows=3))
    assert (hub.repo(REPO).commits, hub.repo(REPO).branches, hub.files(REPO)) == before


def test_a_transient_upload_error_is_retried(hub, distilled):
    hub.state.inject_failure("lfs-upload", status=500, times=1)
    publish(PublishConfig(distilled=str(distilled), repo_id=REPO))
    assert [status for _, path, status in hub.state.requests if path.startswith("/lfs-upload/")].count(500) == 1
    assert len(hub.repo(REPO).commits) == 2


def test_a_missing_token_is_refused_before_any_request(hub, distilled, monkeypatch, tmp_path):
    import huggingface_hub.constants as constants

    monkeypatch.delenv("HF_TOKEN")
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    hub.state.requests.clear()
    with pytest.raises(SddError, match="no Hugging Face token found"):
        publish(PublishConfig(distilled=str(distilled), repo_id=REPO))
    assert hub.state.requests == [] and hub.state.repos == {}


def test_a_rejected_token_is_refused_before_any_upload(hub, distilled, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_wrong")
    with pytest.raises(SddError, match=r"token was rejected .*401"):
        publish(PublishConfig(distilled=str(distilled), repo_id=REPO))
    assert [path for _, path, _ in hub.state.requests if "agent-harnesses" not in path] == ["/api/whoami-v2"]
    assert hub.state.repos == {}


def test_a_dry_run_writes_what_would_be_uploaded(hub, distilled, tmp_path, capsys):
    publish(PublishConfig(distilled=str(distilled), repo_id=REPO))
    before = list(hub.repo(REPO).commits)
    folder = tmp_path / "dry"
    result = publish(
        PublishConfig(distilled=str(distilled), repo_id=REPO, config_name="more", dry_run=True, output_dir=str(folder))
    )
    written = sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file())
    assert (
        written
        == sorted(result.written)
        == [
            "README.md",
            "data/more/dropped-00000-of-00001.parquet",
            "data/more/train-00000-of-00001.parquet",
            "sdd_data.json",
        ]
    )
    assert hub.repo(REPO).commits == before
    printed = capsys.readouterr().out
    assert (
        "would commit to tester/distilled@main" in printed
        and "upload data/more/train-00000-of-00001.parquet" in printed
    )
    card = DatasetCard((folder / "README.md").read_text())
    assert [entry["config_name"] for entry in card.data.configs] == ["gsm8k", "more"]  # merged with the repo's card
    assert all(TOKEN.encode() not in path.read_bytes() for path in folder.rglob("*") if path.is_file())
    assert TOKEN not in printed


def test_a_local_save_loads_with_load_dataset(distilled, tmp_path):
    folder = tmp_path / "published"
    publish(PublishConfig(distilled=str(distilled), output_dir=str(folder)))
    assert load(str(folder), None, "train", tmp_path) == rows(distilled, "distilled.parquet")
    publish(PublishConfig(distilled=str(distilled), output_dir=str(folder), config_name="second"))
    assert load(str(folder), "second", "train", tmp_path) == load(str(folder), "gsm8k", "train", tmp_path)
    card = DatasetCard((folder / "README.md").read_text())
    assert [entry["config_name"] for entry in card.data.configs] == ["gsm8k", "second"]
    DatasetCardData(**card.data.to_dict())
    assert 'load_dataset("' + str(folder) in card.text


def test_a_local_save_refuses_a_folder_of_other_files(distilled, tmp_path):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(SddError, match="holds other files"):
        publish(PublishConfig(distilled=str(distilled), output_dir=str(tmp_path / "busy")))


def test_options_are_checked(distilled, tmp_path):
    with pytest.raises(SddError, match="--repo-id .* or --output-dir"):
        publish(PublishConfig(distilled=str(distilled)))
    with pytest.raises(SddError, match="only for a --dry-run"):
        publish(PublishConfig(distilled=str(distilled), repo_id=REPO, output_dir=str(tmp_path / "x")))
    with pytest.raises(SddError, match="neither a distill run nor a select output"):
        publish(PublishConfig(distilled=str(tmp_path), output_dir=str(tmp_path / "x")))
    assert default_config_name("openai/gsm8k") == "gsm8k" and default_config_name("my data.jsonl") == "my-data"


def test_the_cli_publishes(distilled, tmp_path):
    folder = tmp_path / "cli"
    assert (
        main(
            [
                "publish",
                "--distilled",
                str(distilled),
                "--output-dir",
                str(folder),
                "--config-name",
                "math",
                "--no-include-dropped",
                "--license",
                "cc-by-4.0",
            ]
        )
        == 0
    )
    card = DatasetCard((folder / "README.md").read_text())
    assert card.data.license == "cc-by-4.0" and card.data.configs[0]["config_name"] == "math"
    assert main(["publish", "--distilled", str(distilled)]) == 2
