"""The publish stage: a distilled dataset (or a model, see `model_stage`) saved in the Hub's layout locally,
or pushed to the Hub in one commit.

Both targets get the same files: Parquet shards under `data/<config>/<split>-*.parquet`, a dataset card
(`README.md`) whose YAML `configs` point at them, and the provenance of every config (`sdd_data.json`).
A push stages everything in a temporary folder and lands it with a single commit (LFS files are uploaded
before the commit is made), so a failure leaves the repo as it was; a repo or branch the push created is
deleted again. A local save builds the whole new folder beside the old one and swaps it in with one rename.
"""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow as pa

from sdd_data import __version__, artifacts
from sdd_data.artifacts import CARD_FILE, PROVENANCE_FILE
from sdd_data.data.stage_data import read_json_object, read_stage_dataset
from sdd_data.errors import SddError, first_line
from sdd_data.publish.config import PublishConfig
from sdd_data.publish.hub_repo import RepoState, hub_client, read_repo
from sdd_data.publish.layout import stage_files
from sdd_data.publish.links import check_links_inside
from sdd_data.publish.local_folder import save_to_folder
from sdd_data.publish.push import push
from sdd_data.publish.result import PublishResult

CONFIG_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
BAD_REVISION = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]|\.\.|@\{|//|/\.|^[-/.]|[/.]$|\.lock$|^@$")
"""What git refuses in a branch name (see git check-ref-format)."""
STATS_SHAPE: dict[str, tuple[type, tuple[str, ...]]] = {
    "config": (dict, ("on_failure",)),
    "source": (dict, ("name", "fingerprint", "preset")),
    "teacher": (dict, ("name", "revision")),
    "engine": (dict, ()),
    "template": (dict, ("name", "chat", "system", "user", "description", "assistant_prefix")),
    "seed_policy": (str, ()),
    "rows_in": (int, ()),
    "rows_out": (int, ()),
    "decisions": (dict, ()),
    "reasons_by_decision": (dict, ()),
    "by_task": (dict, ()),
    "tokens": (dict, ()),
    "sdd_data_version": (str, ()),
}
"""The distill stats a publish records: each key's type and the keys it must hold."""


def default_config_name(source_name: str) -> str:
    """A config name from a source name: `openai/gsm8k` -> `gsm8k`, `train.jsonl` -> `train`."""
    stem = Path(source_name.rstrip("/").rsplit("/", 1)[-1]).stem
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", stem).strip("-.") or "default"


def check_options(config: PublishConfig) -> None:
    """Refuse options that cannot run, before anything is read (`sdd-data run` calls it for every step)."""
    if (config.distilled is None) == (config.model is None):
        both = ", not both" if config.distilled else ""
        raise SddError(
            "give --distilled (a dataset: a distill or select output) or --model (a model: a prune, train or "
            f"merge output) to publish{both}"
        )
    dataset_only = {
        "config_name": None,
        "source_license": None,
        "include_dropped": True,
        "shard_rows": 100_000,
        "report": False,
    }
    model_only = {"dataset_repo": None, "eval": None, "eval_model": None}
    wrong = [
        name
        for name, default in (dataset_only if config.model else model_only).items()
        if getattr(config, name) != default
    ]
    if wrong:
        flag = "--" + wrong[0].replace("_", "-")
        raise SddError(f"{flag} goes with {'--distilled' if config.model else '--model'} only")
    if config.eval_model is not None and config.eval is None:
        raise SddError("--eval-model goes with --eval (the eval folder it names a model of)")
    if config.dataset_repo is not None:
        _check_repo_id(config.dataset_repo, "--dataset-repo")
    if config.repo_id is None and config.output_dir is None:
        raise SddError("give --repo-id to push to the Hub or --output-dir to save locally")
    if config.repo_id is not None and config.output_dir is not None and not config.dry_run:
        raise SddError("--output-dir goes with --repo-id only for a --dry-run; publish twice to do both")
    if config.dry_run and (config.repo_id is None or config.output_dir is None):
        raise SddError("--dry-run needs --repo-id (the target) and --output-dir (where the files go)")
    if config.repo_id is not None:
        _check_repo_id(config.repo_id)
        _check_revision(config.revision)
    if config.config_name is not None and not CONFIG_NAME.fullmatch(config.config_name):
        raise SddError(f"config name must be letters, digits, '_', '-' or '.', got {config.config_name!r}")
    if config.shard_rows <= 0:
        raise SddError(f"shard_rows must be positive, got {config.shard_rows}")


def _check_repo_id(repo_id: str, flag: str = "--repo-id") -> None:
    """Refuse a repo id the Hub would refuse, before anything is written or asked."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    problem = None if repo_id.count("/") == 1 else "it must look like user/name"
    if problem is None:
        try:
            validate_repo_id(repo_id)
        except HFValidationError as error:
            problem = first_line(error)
    if problem:
        raise SddError(f"{flag} {repo_id!r} is not a valid Hub repo id ({problem}); give one like user/name")


def _check_revision(revision: str) -> None:
    """Refuse a --revision that cannot be a branch name."""
    if not revision or BAD_REVISION.search(revision):
        raise SddError(
            f"--revision {revision!r} is not a valid branch name (no spaces, '..', '~^:?*[\\', "
            "and no '/' or '.' at either end); give a branch name like main or dev"
        )


def _check_stats(stats: dict, where: str) -> None:
    """Refuse distill stats that lack what a publish records, naming the file and the first missing key."""
    for key, (kind, inner) in STATS_SHAPE.items():
        value = stats.get(key)
        missing = [name for name in inner if not isinstance(value, dict) or name not in value]
        if not isinstance(value, kind) or isinstance(value, bool) != (kind is bool) or missing:
            what = f"{key}.{missing[0]}" if isinstance(value, kind) and missing else key
            raise SddError(
                f"{where} lacks a valid `{what}`: the folder is damaged or was written by another tool; "
                "distill it again"
            )


def _selection_summary(folder: Path, provenance: dict) -> dict:
    """How a select output chose its rows, for the card: method, budget, counts and the cluster table."""
    report_path = folder / artifacts.SELECT_REPORT
    report = read_json_object(report_path) if report_path.is_file() else {}
    counts = provenance.get("counts") if isinstance(provenance.get("counts"), dict) else {}
    config = provenance.get("config") if isinstance(provenance.get("config"), dict) else {}
    clusters = report.get("clusters")
    if clusters is not None and not (
        isinstance(clusters, list) and all(isinstance(row, dict) and row for row in clusters)
    ):
        raise SddError(f"{report_path}: `clusters` must be a list of rows (objects); the folder is damaged")
    return {
        "method": config.get("method"),
        "budget": counts.get("budget"),
        "rows": counts.get("rows"),
        "selected": counts.get("selected"),
        "clusters": clusters,
    }


def read_publishable(folder: Path) -> tuple[dict, pa.Table, pa.Table | None]:
    """The distill stats, kept rows and dropped rows of a distill run, or of a selection made from one."""
    if not folder.exists():
        raise SddError(f"--distilled {folder} does not exist; give the output folder of `sdd-data distill` or select")
    output = artifacts.detect(folder)
    if output is None or output.kind not in (artifacts.DISTILL_RUN, artifacts.SELECT_OUTPUT):
        found = f"a {artifacts.WRITTEN_BY[output.kind]} output" if output else "not a stage output"
        model = (
            "; publish a model with --model instead of --distilled" if output and output.kind == artifacts.MODEL else ""
        )
        raise SddError(
            f"{folder} is neither a distill run nor a select output ({found}): publish takes the output folder "
            f"of `sdd-data distill` or `sdd-data select`{model}"
        )
    check_links_inside(folder, flag="--distilled")
    kept = read_stage_dataset(folder, "train")
    if output.kind == artifacts.DISTILL_RUN:
        _check_stats(kept.provenance, str(folder / artifacts.STATS_FILE))
        return kept.provenance, kept.table, read_stage_dataset(folder, "dropped").table
    source = kept.provenance.get("source")
    stats = source.get("distill_stats") if isinstance(source, dict) else None
    if not stats:
        raise SddError(
            f"{folder} was selected from data that no distill run made, so it has no teacher or "
            "filter to record; select from a distill run's output to publish the selection"
        )
    where = f"{folder / artifacts.PROVENANCE_FILE} (source.distill_stats)"
    if not isinstance(stats, dict):
        raise SddError(f"{where} must be a JSON object: the folder is damaged; select again")
    _check_stats(stats, where)
    return {**stats, "selection": _selection_summary(folder, kept.provenance)}, kept.table, None


def _publish_dataset(config: PublishConfig) -> PublishResult:
    stats, kept, dropped = read_publishable(Path(str(config.distilled)).expanduser())
    config_name = config.config_name or default_config_name(stats["source"]["name"])
    splits = {"train": kept}
    if config.include_dropped and dropped is not None and len(dropped):
        try:
            splits["dropped"] = dropped.cast(kept.schema)
        except (ValueError, pa.ArrowException) as error:
            raise SddError(
                f"{config.distilled}: the dropped rows do not have the kept rows' columns ({first_line(error)}); "
                "the folder is damaged: distill it again, or publish with --no-include-dropped"
            ) from None
    if config.repo_id is None:
        folder = Path(str(config.output_dir)).expanduser()

        def stage_local(staging: Path, state: RepoState) -> list[str]:
            return stage_files(staging, config, config_name, str(folder), state, stats, splits, str(folder))

        written, deleted = save_to_folder(folder, config_name, stage_local)
        print(f"saved config {config_name!r} to {folder}: {', '.join(written)}")
        return PublishResult(str(folder), config_name, written, deleted, None)
    repo_id = str(config.repo_id)
    target = f"{repo_id}@{config.revision}"
    api = hub_client(token_required=not config.dry_run)
    prefix = f"data/{config_name}/"
    state = read_repo(api, repo_id, config.revision, lambda name: name.startswith(prefix), CARD_FILE, PROVENANCE_FILE)

    def stage(folder: Path, state: RepoState) -> list[str]:
        return stage_files(folder, config, config_name, repo_id, state, stats, splits, target)

    message = f"Publish config {config_name} (sdd-data {__version__})"
    written, deleted, commit = push(config, api, state, stage, "dataset", message)
    if commit is not None:
        print(f"published config {config_name!r} to {target} in commit {commit}")
    return PublishResult(target, config_name, written, deleted, commit)


def publish(config: PublishConfig) -> PublishResult:
    """Save a distilled dataset, or a model, locally or push it to the Hub, with its card and provenance."""
    check_options(config)
    if config.model is not None:
        from sdd_data.publish.model_stage import publish_model

        return publish_model(config)
    return _publish_dataset(config)
