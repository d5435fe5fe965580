"""Publishing a model: a prune, train or merge output pushed to a Hub model repo, or saved locally, the way
a dataset is (the token checked first, one commit, a dry run, an atomic local save, cleanup on failure).

The repo gets the safetensors checkpoint with its config and tokenizer files, a model card (README.md)
that says how the model was made and how it scores, and sdd_data.json with the same facts as data.
Checkpoint files of an earlier publish that the new model lacks (other shards, pickle weights) are
deleted in the same commit; any other file of the repo is kept.
"""

from __future__ import annotations

from pathlib import Path

from sdd_data import __version__, artifacts
from sdd_data.artifacts import CARD_FILE, PROVENANCE_FILE
from sdd_data.cards import recovered_model_card
from sdd_data.errors import SddError
from sdd_data.hub import hub_endpoint
from sdd_data.publish.config import PublishConfig
from sdd_data.publish.hub_repo import RepoState, hub_client, read_repo
from sdd_data.publish.local_folder import save_model_to_folder
from sdd_data.publish.model_layout import checkpoint_file, checkpoint_files, model_provenance, stage_model_files
from sdd_data.publish.model_records import read_evaluation, trace_model
from sdd_data.publish.push import push
from sdd_data.publish.result import PublishResult


def read_model_folder(text: str) -> Path:
    """The --model folder, checked to be a model checkpoint."""
    folder = Path(text).expanduser()
    if not folder.exists():
        raise SddError(f"--model {folder} does not exist; give the output folder of sdd-data prune, train or merge")
    output = artifacts.detect(folder)
    if output is None or output.kind != artifacts.MODEL:
        found = f"a {artifacts.WRITTEN_BY[output.kind]} output" if output else "no config.json"
        raise SddError(
            f"--model {folder} is not a model checkpoint ({found}); give the output folder of sdd-data prune, "
            "train or merge (a dataset is published with --distilled)"
        )
    return folder


def model_facts(config: PublishConfig, folder: Path) -> dict:
    """What the card and sdd_data.json say about the model: its records, the dataset repo and the evaluation."""
    lineage = trace_model(folder)
    stored_evaluation = lineage.pop("evaluation", None)  # a folder that publish --model saved
    stored_dataset_repo = lineage.pop("dataset_repo", None)
    lineage.pop("published_with", None)
    evaluation = (
        read_evaluation(Path(config.eval).expanduser(), folder, config.eval_model) if config.eval else stored_evaluation
    )
    return model_provenance(lineage, config.dataset_repo or stored_dataset_repo, evaluation)


def publish_model(config: PublishConfig) -> PublishResult:
    """Save the model locally or push it to a Hub model repo, with its card and provenance."""
    folder = read_model_folder(str(config.model))
    files = checkpoint_files(folder)
    provenance = model_facts(config, folder)

    def stager(name: str, load_path: str, endpoint: str):
        def stage(staging: Path, state: RepoState) -> list[str]:
            card = recovered_model_card(
                state.card,
                provenance,
                model_name=config.pretty_name or name,
                load_path=load_path,
                license_id=config.license,
                endpoint=endpoint,
            )
            return stage_model_files(staging, folder, files, card, provenance)

        return stage

    if config.repo_id is None:
        output = Path(str(config.output_dir)).expanduser()
        stage = stager(output.resolve().name, str(output), hub_endpoint())
        written, deleted = save_model_to_folder(output, stage)
        print(f"saved the model {folder} to {output}: {', '.join(written)}")
        return PublishResult(str(output), None, written, deleted, None)
    repo_id = str(config.repo_id)
    api = hub_client(token_required=not config.dry_run)
    owned = lambda name: checkpoint_file(name) or name == PROVENANCE_FILE  # noqa: E731
    state = read_repo(api, repo_id, config.revision, owned, CARD_FILE, PROVENANCE_FILE, repo_type="model")
    target = f"{repo_id}@{config.revision}"
    stage = stager(repo_id.split("/")[-1], repo_id, hub_endpoint())
    message = f"Publish the model {folder.resolve().name} (sdd-data {__version__})"
    written, deleted, commit = push(config, api, state, stage, "model", message)
    if commit is not None:
        print(f"published the model {folder} to the model repo {target} in commit {commit}")
    return PublishResult(target, None, written, deleted, commit)
