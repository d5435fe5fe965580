"""Publishing a model: a pruned, trained or merged checkpoint pushed to a model repo of the local Hub server
(one commit, weights through LFS, loadable with from_pretrained), saved locally, dry runs, failures."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from data_samples import write_jsonl
from hub_fixtures import TOKEN, USER, cli_error
from huggingface_hub import HfApi, ModelCard, snapshot_download
from huggingface_hub.repocard_data import model_index_to_eval_results
from test_train import QUICK, SFT_CPU

from sdd_data import artifacts
from sdd_data.cli import main
from sdd_data.errors import SddError
from sdd_data.publish import PublishConfig, publish

REPO = f"{USER}/recovered"
DATA_REPO = f"{USER}/distilled"
MC_ROWS = [
    {"query": "Question: What colour is the sky on a clear day?\nAnswer:", "choices": ["blue", "green"], "gold": 0},
    {"query": "Question: How many legs does a cat have?\nAnswer:", "choices": ["three", "four"], "gold": 1},
]


@pytest.fixture(scope="module")
def pruned_tiny(tiny_llama_path: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny Llama with block 1 removed by the prune stage (so with its record)."""
    from sdd_data.prune import PruneConfig, prune

    output = tmp_path_factory.mktemp("pruned") / "tiny-pruned"
    return prune(PruneConfig(model=tiny_llama_path, blocks="1", output=str(output)), show_progress=False).output


@pytest.fixture(scope="module")
def recovered(pruned_tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The pruned tiny Llama after one SFT step on a small distilled set (a train output with its records)."""
    from test_train import CHAT_ROWS

    from sdd_data.train import TrainConfig, train

    folder = tmp_path_factory.mktemp("recovery")
    data = folder / "chat.jsonl"
    write_jsonl(data, CHAT_ROWS)
    config = TrainConfig(
        recipe=str(SFT_CPU),
        model=str(pruned_tiny),
        data=str(data),
        output=str(folder / "tiny-recovered"),
        max_steps=1,
        overrides=dict(QUICK),
    )
    return train(config, show_progress=False).output


@pytest.fixture(scope="module")
def evaluated(tiny_llama_path: str, pruned_tiny: Path, recovered: Path, tmp_path_factory: pytest.TempPathFactory):
    """An eval folder scoring the original, the pruned and the recovered tiny Llama on a 2-item mc file."""
    from sdd_data.evaluate import EvalConfig, evaluate

    folder = tmp_path_factory.mktemp("eval")
    mc = folder / "colours.jsonl"
    write_jsonl(mc, MC_ROWS)
    models = f"original={tiny_llama_path},pruned={pruned_tiny},recovered={recovered}"
    evaluate(EvalConfig(models=models, tasks=f"mc:{mc}", limit=2, output=str(folder / "out")))
    return folder / "out"


def state_dicts_equal(first, second) -> bool:
    import torch

    one, two = first.state_dict(), second.state_dict()
    return one.keys() == two.keys() and all(torch.equal(one[name], two[name]) for name in one)


def load_back(repo_id: str, tmp_path: Path, revision: str = "main"):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    snapshot = snapshot_download(repo_id, revision=revision, cache_dir=str(tmp_path / "downloads"))
    return AutoModelForCausalLM.from_pretrained(snapshot, use_safetensors=True), AutoTokenizer.from_pretrained(snapshot)


def test_a_model_push_is_one_commit_that_loads_back(hub, recovered, evaluated, tmp_path, capsys):
    from transformers import AutoModelForCausalLM

    hub.state.lfs_threshold = 4_000  # the tokenizer is larger: it must travel through LFS as well
    result = publish(
        PublishConfig(model=str(recovered), repo_id=REPO, dataset_repo=DATA_REPO, eval=str(evaluated), license="mit")
    )

    assert REPO in hub.state.models and REPO not in hub.state.repos  # a model repo, not a dataset repo
    repo = hub.repo(REPO, "model")
    assert len(repo.commits) == 2 and repo.commits[-1].oid == result.commit and result.config_name is None
    files = hub.files(REPO, kind="model")
    assert {"model.safetensors", "config.json", "tokenizer.json", "README.md", "sdd_data.json"} <= set(files)
    assert not {artifacts.PRUNE_RECORD, artifacts.TRAIN_RECORD} & set(files)  # their facts are in sdd_data.json
    assert len(files["tokenizer.json"]) > hub.state.lfs_threshold
    assert {"model.safetensors", "tokenizer.json"} <= repo.commits[-1].lfs and "config.json" not in repo.commits[-1].lfs
    lfs_uploads = [path for method, path, status in hub.state.requests if method == "PUT" and status == 200]
    assert len(lfs_uploads) == len(repo.commits[-1].lfs)

    model, tokenizer = load_back(REPO, tmp_path)
    assert model.config.num_hidden_layers == 1
    assert state_dicts_equal(model, AutoModelForCausalLM.from_pretrained(recovered, use_safetensors=True))
    assert tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False)

    card = ModelCard(files["README.md"].decode())
    assert card.data.license == "mit" and card.data.datasets == [DATA_REPO]
    assert {"pruning", "pruning-recovery", "sdd-data"} <= set(card.data.tags)
    assert card.data.library_name == "transformers" and card.data.pipeline_tag == "text-generation"
    assert "removed 1 of 2 decoder blocks (0-based: 1)" in card.text
    assert f"[`{DATA_REPO}`]({hub.endpoint}/datasets/{DATA_REPO})" in card.text
    assert "| `learning_rate` |" in card.text and "| `max_steps` | 1 |" in card.text
    assert "| mc:colours | acc_norm (%) |" in card.text and "| `recovered` | `original` | retention % |" in card.text
    name, results = model_index_to_eval_results(card.data.to_dict()["model-index"])
    report = json.loads((evaluated / "results.json").read_text())
    assert name == "recovered" and [result.dataset_name for result in results] == ["mc:colours"]
    assert results[0].metric_value == pytest.approx(
        100 * report["tasks"]["mc:colours"]["scores"]["recovered"], abs=0.01
    )
    assert card.data.eval_results[0].metric_type == "acc_norm"
    facts = json.loads(files["sdd_data.json"])["model"]
    assert facts["kind"] == "train" and facts["pruning"]["removed_blocks"] == [1]
    assert facts["evaluation"]["model"] == "recovered" and facts["dataset_repo"] == DATA_REPO
    published = b"".join(content for path, content in files.items() if not path.endswith(".safetensors"))
    assert str(tmp_path.parent).encode() not in published and TOKEN.encode() not in published
    assert f"to the model repo {REPO}@main" in capsys.readouterr().out


def test_a_republish_replaces_the_checkpoint_and_keeps_other_files(hub, recovered, pruned_tiny, tmp_path, capsys):
    publish(PublishConfig(model=str(recovered), repo_id=REPO))
    api = HfApi(token=TOKEN)
    api.upload_file(path_or_fileobj=b"notes", path_in_repo="NOTES.md", repo_id=REPO)
    api.upload_file(path_or_fileobj=b"old weights", path_in_repo="pytorch_model.bin", repo_id=REPO)
    before = list(hub.repo(REPO, "model").commits)

    dry = tmp_path / "dry"
    result = publish(PublishConfig(model=str(pruned_tiny), repo_id=REPO, dry_run=True, output_dir=str(dry)))
    assert hub.repo(REPO, "model").commits == before and result.commit is None
    assert sorted(path.name for path in dry.iterdir()) == sorted(result.written)
    assert result.deleted == ["pytorch_model.bin"]
    printed = capsys.readouterr().out
    assert f"would commit to model repo {REPO}@main" in printed and "delete pytorch_model.bin" in printed
    assert "fine-tuned" not in (dry / "README.md").read_text()  # the pruned model was not trained

    publish(PublishConfig(model=str(pruned_tiny), repo_id=REPO))
    files = hub.files(REPO, kind="model")
    assert "NOTES.md" in files and "pytorch_model.bin" not in files and len(hub.repo(REPO, "model").commits) == 5
    assert json.loads(files["sdd_data.json"])["model"]["kind"] == "prune"


@pytest.mark.parametrize("route", ["commit", "lfs-upload", "preupload"])
def test_a_failed_first_commit_deletes_the_model_repo_it_created(hub, recovered, route, monkeypatch):
    import huggingface_hub.utils._http as http

    monkeypatch.setattr(http.time, "sleep", lambda seconds: None)
    hub.state.inject_failure(route, status=500, times=100)
    with pytest.raises(SddError, match=f"nothing was published; the repo {REPO}, which this publish created, was del"):
        publish(PublishConfig(model=str(recovered), repo_id=REPO))
    assert hub.state.models == {} and hub.state.repos == {}


def test_a_failed_commit_to_a_new_branch_deletes_only_the_branch(hub, recovered, pruned_tiny):
    publish(PublishConfig(model=str(recovered), repo_id=REPO))
    before = list(hub.repo(REPO, "model").commits)
    hub.state.inject_failure("commit", status=500, times=100)
    with pytest.raises(SddError, match=f"the branch dev of {REPO}, which this publish created, was deleted again"):
        publish(PublishConfig(model=str(pruned_tiny), repo_id=REPO, revision="dev"))
    assert hub.repo(REPO, "model").commits == before and set(hub.repo(REPO, "model").branches) == {"main"}


def test_the_token_is_checked_before_anything_is_read(hub, recovered, monkeypatch, tmp_path):
    import huggingface_hub.constants as constants

    monkeypatch.delenv("HF_TOKEN")
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    hub.state.requests.clear()
    with pytest.raises(SddError, match="no Hugging Face token found"):
        publish(PublishConfig(model=str(recovered), repo_id=REPO))
    assert hub.state.requests == [] and hub.state.models == {}


def test_a_merged_model_saved_locally_follows_both_models_back(hub, pruned_tiny, recovered, tmp_path):
    from transformers import AutoModelForCausalLM

    from sdd_data.merge import MergeConfig, merge

    recipe = tmp_path / "merge.yaml"
    recipe.write_text(
        yaml.safe_dump(
            {
                "merge_method": "slerp",
                "models": [{"model": str(pruned_tiny)}, {"model": str(recovered)}],
                "base_model": str(pruned_tiny),
                "parameters": {"t": 0.5},
            }
        )
    )
    merged = merge(MergeConfig(merge_config=str(recipe), output=str(tmp_path / "merged")), show_progress=False).output
    folder = tmp_path / "published"
    result = publish(PublishConfig(model=str(merged), output_dir=str(folder), dataset_repo=DATA_REPO))

    assert artifacts.detect(folder).kind == artifacts.MODEL and artifacts.is_published_model(folder)
    assert sorted(path.name for path in folder.iterdir()) == sorted(result.written)
    assert state_dicts_equal(
        AutoModelForCausalLM.from_pretrained(folder, use_safetensors=True),
        AutoModelForCausalLM.from_pretrained(merged, use_safetensors=True),
    )
    card = ModelCard((folder / "README.md").read_text())
    assert "merge" in card.data.tags and "SLERP of `tiny-pruned` (t = 0) and `tiny-recovered` (t = 1)" in card.text
    assert "removed 1 of 2 decoder blocks (0-based: 1)" in card.text and "| `learning_rate` |" in card.text
    assert "- `tiny-pruned`: pruned (blocks 1 removed)" in card.text
    assert "- `tiny-recovered`: pruned (blocks 1 removed), fine-tuned on `chat.jsonl`" in card.text
    facts = json.loads((folder / "sdd_data.json").read_text())["model"]
    assert f'from_pretrained("{folder}")' in card.text  # a local save loads from its folder
    assert str(tmp_path) not in card.text.replace(str(folder), "folder") + json.dumps(facts)
    assert yaml.safe_load(facts["merge"]["recipe"])["base_model"] == "tiny-pruned"

    # The saved folder publishes again as it is (its facts come from its sdd_data.json) ...
    publish(PublishConfig(model=str(folder), repo_id=REPO))
    pushed = json.loads(hub.files(REPO, kind="model")["sdd_data.json"])["model"]
    assert pushed["merge"] == facts["merge"] and pushed["dataset_repo"] == DATA_REPO
    # ... and a second local save replaces it whole.
    publish(PublishConfig(model=str(pruned_tiny), output_dir=str(folder)))
    assert json.loads((folder / "sdd_data.json").read_text())["model"]["kind"] == "prune"
    assert [path.name for path in tmp_path.iterdir() if path.name.startswith(".published")] == [
        ".published.publish.lock"
    ]


def test_refusals_are_one_line(capsys, recovered, distilled, evaluated, tmp_path):
    import torch

    pickled = tmp_path / "pickled"
    shutil.copytree(recovered, pickled)
    torch.save({"weight": torch.zeros(2)}, pickled / "pytorch_model.bin")
    out = str(tmp_path / "out")
    assert "holds pickle files (pytorch_model.bin)" in cli_error(capsys, "--model", str(pickled), "--output-dir", out)
    for path in pickled.glob("*.safetensors"):
        path.unlink()
    (pickled / "pytorch_model.bin").unlink()
    assert "has no safetensors weights" in cli_error(capsys, "--model", str(pickled), "--output-dir", out)
    no_tokenizer = tmp_path / "no-tokenizer"
    shutil.copytree(recovered, no_tokenizer, ignore=shutil.ignore_patterns("tokenizer*"))
    assert "has no tokenizer" in cli_error(capsys, "--model", str(no_tokenizer), "--output-dir", out)
    error = cli_error(capsys, "--model", str(distilled), "--output-dir", out)
    assert "is not a model checkpoint (a distill output)" in error
    error = cli_error(capsys, "--distilled", str(recovered), "--output-dir", out)
    assert "publish a model with --model instead of --distilled" in error
    assert "not both" in cli_error(
        capsys, "--distilled", str(distilled), "--model", str(recovered), "--output-dir", out
    )
    assert "--config-name goes with --distilled only" in cli_error(
        capsys, "--model", str(recovered), "--config-name", "x", "--output-dir", out
    )
    assert "--eval goes with --model only" in cli_error(
        capsys, "--distilled", str(distilled), "--eval", str(evaluated), "--output-dir", out
    )
    assert "is not an eval output" in cli_error(
        capsys, "--model", str(recovered), "--eval", str(distilled), "--output-dir", out
    )
    error = cli_error(
        capsys, "--model", str(recovered), "--eval", str(evaluated), "--eval-model", "x", "--output-dir", out
    )
    assert "--eval-model 'x' is not in" in error and "original, pruned, recovered" in error
    assert "--dataset-repo 'bad name'" in cli_error(
        capsys, "--model", str(recovered), "--dataset-repo", "bad name", "--output-dir", out
    )
    assert "is a prune, train or merge output, not a folder a model was published to" in cli_error(
        capsys, "--model", str(recovered), "--output-dir", str(recovered)
    )
    stranger = tmp_path / "stranger"
    shutil.copytree(recovered, stranger)
    error = cli_error(capsys, "--model", str(stranger), "--eval", str(evaluated), "--output-dir", out)
    assert "holds no single model evaluated from" in error and "--eval-model NAME" in error
    assert not (tmp_path / "out").exists()


def test_a_sharded_checkpoint_goes_whole_and_its_shards_leave_with_it(hub, recovered, tmp_path, capsys):
    from transformers import AutoModelForCausalLM

    sharded = tmp_path / "sharded"
    AutoModelForCausalLM.from_pretrained(recovered).save_pretrained(sharded, max_shard_size="300KB")
    for path in recovered.glob("tokenizer*"):
        shutil.copy2(path, sharded / path.name)
    shards = sorted(path.name for path in sharded.glob("*.safetensors"))
    assert len(shards) > 1 and (sharded / "model.safetensors.index.json").is_file()
    assert main(["publish", "--model", str(sharded), "--repo-id", REPO]) == 0
    files = hub.files(REPO, kind="model")
    assert set(shards) <= set(files) and set(shards) <= hub.repo(REPO, "model").commits[-1].lfs
    model, _ = load_back(REPO, tmp_path)
    assert state_dicts_equal(model, AutoModelForCausalLM.from_pretrained(recovered, use_safetensors=True))

    assert main(["publish", "--model", str(recovered), "--repo-id", REPO]) == 0
    files = hub.files(REPO, kind="model")
    assert not set(shards) & set(files) and "model.safetensors.index.json" not in files
    assert "model.safetensors" in files

    (sharded / shards[0]).unlink()
    assert f"names shards that are missing ({shards[0]})" in cli_error(
        capsys, "--model", str(sharded), "--output-dir", str(tmp_path / "out")
    )


@pytest.mark.slow
def test_a_pruned_smollm2_is_published_with_its_evaluation(hub, smollm2_path, tmp_path):
    from conftest import PRUNED_SMOLLM2_BLOCKS

    from sdd_data.evaluate import EvalConfig, evaluate
    from sdd_data.prune import PruneConfig, prune

    blocks = ",".join(map(str, PRUNED_SMOLLM2_BLOCKS))
    pruned = prune(PruneConfig(model="smollm2", blocks=blocks, output=str(tmp_path / "pruned")), show_progress=False)
    arc = Path(__file__).parent / "data" / "arc_easy.jsonl"
    evaluate(
        EvalConfig(
            models=f"original=smollm2,pruned={pruned.output}", tasks=f"mc:{arc}", limit=2, output=str(tmp_path / "eval")
        )
    )

    publish(PublishConfig(model=str(pruned.output), repo_id=REPO, dataset_repo=DATA_REPO, eval=str(tmp_path / "eval")))

    repo = hub.repo(REPO, "model")
    files = hub.files(REPO, kind="model")
    assert len(files["tokenizer.json"]) > hub.state.lfs_threshold and "tokenizer.json" in repo.commits[-1].lfs
    model, tokenizer = load_back(REPO, tmp_path)
    assert model.config.num_hidden_layers == 26 and tokenizer.eos_token == "<|im_end|>"
    card = ModelCard(files["README.md"].decode())
    assert "`SmolLM2-135M-Instruct` with 4 of its decoder blocks removed" in card.text
    assert (
        "| pruning | removed 4 of 30 decoder blocks (0-based: 20, 21, 22, 23) given by hand; 26 left; "
        "134.5M → 120.4M parameters |" in card.text
    )
    assert f"| recovery data | [`{DATA_REPO}`]({hub.endpoint}/datasets/{DATA_REPO}) |" in card.text
    report = json.loads((tmp_path / "eval" / "results.json").read_text())
    scores = report["tasks"]["mc:arc_easy"]["scores"]
    retained = report["retention"]["pruned"]["mc:arc_easy"]
    retention = "-" if retained is None else f"{retained:.1f}"
    row = (
        f"| mc:arc_easy | acc_norm (%) | {100 * scores['pruned']:.1f} | {100 * scores['original']:.1f} | {retention} |"
    )
    assert row in card.text and card.data.datasets == [DATA_REPO]
    name, results = model_index_to_eval_results(card.data.to_dict()["model-index"])
    assert name == "recovered" and len(results) == 1
    assert (results[0].dataset_type, results[0].metric_type) == ("mc:arc_easy", "acc_norm")
    assert results[0].metric_value == pytest.approx(100 * scores["pruned"], abs=0.01)


def test_a_link_leaving_the_model_folder_is_refused_and_nothing_is_written(pruned_tiny, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(pruned_tiny, folder)
    (tmp_path / "secret.txt").write_text("hf_not_for_you\n")
    (folder / "special_tokens_map.json").unlink(missing_ok=True)
    (folder / "special_tokens_map.json").symlink_to("../secret.txt")
    for options in (
        {"output_dir": str(tmp_path / "out")},
        {"repo_id": REPO, "dry_run": True, "output_dir": str(tmp_path / "out")},
    ):
        with pytest.raises(SddError, match=r"special_tokens_map.json is a link to .*secret.txt, outside the folder"):
            publish(PublishConfig(model=str(folder), **options))
    assert not (tmp_path / "out").exists()


def test_links_inside_the_folder_and_a_hub_cache_snapshot_are_published_as_their_contents(pruned_tiny, tmp_path):
    from transformers import AutoModelForCausalLM

    inside = tmp_path / "inside"
    shutil.copytree(pruned_tiny, inside)
    (inside / "kept").mkdir()
    (inside / "config.json").rename(inside / "kept" / "config.json")
    (inside / "config.json").symlink_to("kept/config.json")
    snapshot = tmp_path / "hub" / "models--me--tiny" / "snapshots" / "abc123"
    blobs = tmp_path / "hub" / "models--me--tiny" / "blobs"
    blobs.mkdir(parents=True)
    snapshot.mkdir(parents=True)
    for path in Path(pruned_tiny).iterdir():
        if path.is_file():
            shutil.copy(path, blobs / path.name)
            (snapshot / path.name).symlink_to(Path("..", "..", "blobs", path.name))
    for name, source in (("from-inside", inside), ("from-cache", snapshot)):
        output = tmp_path / name
        publish(PublishConfig(model=str(source), output_dir=str(output)))
        assert not any(path.is_symlink() for path in output.rglob("*"))
        assert (output / "config.json").read_bytes() == (Path(pruned_tiny) / "config.json").read_bytes()
        AutoModelForCausalLM.from_pretrained(output, use_safetensors=True)


def test_a_distilled_folder_with_a_link_outside_is_refused(distilled, tmp_path):
    folder = tmp_path / "linked-run"
    shutil.copytree(distilled, folder, symlinks=True)
    (tmp_path / "elsewhere.parquet").write_bytes((folder / "distilled.parquet").read_bytes())
    (folder / "distilled.parquet").unlink()
    (folder / "distilled.parquet").symlink_to(tmp_path / "elsewhere.parquet")
    with pytest.raises(SddError, match=r"--distilled .*distilled.parquet is a link to .*outside the folder"):
        publish(PublishConfig(distilled=str(folder), output_dir=str(tmp_path / "out")))
