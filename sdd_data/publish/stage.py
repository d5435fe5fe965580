"""The publish stage: a distilled dataset saved in the Hub's layout locally, or pushed to the Hub in one commit.

Both targets get the same files: Parquet shards under `data/<config>/<split>-*.parquet`, a dataset card
(`README.md`) whose YAML `configs` point at them, and the provenance of every config (`sdd_data.json`).
A push stages everything in a temporary folder and lands it with a single commit (LFS files are uploaded
before the commit is made), so a failure leaves the repo as it was.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from sdd_data import __version__, artifacts
from sdd_data.artifacts import CARD_FILE, PROVENANCE_FILE
from sdd_data.cards import dataset_card
from sdd_data.config import leaf_fields
from sdd_data.data.stage_data import read_stage_dataset
from sdd_data.distill import DistillConfig
from sdd_data.errors import SddError
from sdd_data.hub import public_name
from sdd_data.publish.config import PublishConfig
from sdd_data.publish.hub_repo import RepoState, commit_folder, hub_client, read_repo

CONFIG_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


@dataclass
class PublishResult:
    """Where the dataset went and which files changed."""

    target: str
    config_name: str
    written: list[str]
    deleted: list[str]
    commit: str | None


def default_config_name(source_name: str) -> str:
    """A config name from a source name: `openai/gsm8k` -> `gsm8k`, `train.jsonl` -> `train`."""
    stem = Path(source_name.rstrip("/").rsplit("/", 1)[-1]).stem
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", stem).strip("-.") or "default"


def _validate(config: PublishConfig) -> None:
    if config.repo_id is None and config.output_dir is None:
        raise SddError("give --repo-id to push to the Hub or --output-dir to save locally")
    if config.repo_id is not None and config.output_dir is not None and not config.dry_run:
        raise SddError("--output-dir goes with --repo-id only for a --dry-run; publish twice to do both")
    if config.dry_run and (config.repo_id is None or config.output_dir is None):
        raise SddError("--dry-run needs --repo-id (the target) and --output-dir (where the files go)")
    if config.repo_id is not None and not re.fullmatch(r"[\w.-]+/[\w.-]+", config.repo_id):
        raise SddError(f"repo id must look like user/name, got {config.repo_id!r}")
    if config.config_name is not None and not CONFIG_NAME.fullmatch(config.config_name):
        raise SddError(f"config name must be letters, digits, '_', '-' or '.', got {config.config_name!r}")
    if config.shard_rows <= 0:
        raise SddError(f"shard_rows must be positive, got {config.shard_rows}")


def _selection_summary(folder: Path, provenance: dict) -> dict:
    """How a select output chose its rows, for the card: method, budget, counts and the cluster table."""
    report_path = folder / artifacts.SELECT_REPORT
    report = json.loads(report_path.read_text()) if report_path.is_file() else {}
    counts = provenance.get("counts") or {}
    return {
        "method": (provenance.get("config") or {}).get("method"),
        "budget": counts.get("budget"),
        "rows": counts.get("rows"),
        "selected": counts.get("selected"),
        "clusters": report.get("clusters"),
    }


def read_publishable(folder: Path) -> tuple[dict, pa.Table, pa.Table | None]:
    """The distill stats, kept rows and dropped rows of a distill run, or of a selection made from one."""
    output = artifacts.detect(folder)
    if output is None or output.kind not in (artifacts.DISTILL_RUN, artifacts.SELECT_OUTPUT):
        raise SddError(
            f"{folder} is neither a distill run nor a select output: publish takes the output folder "
            "of `sdd-data distill` or `sdd-data select`"
        )
    kept = read_stage_dataset(folder, "train")
    if output.kind == artifacts.DISTILL_RUN:
        return kept.provenance, kept.table, read_stage_dataset(folder, "dropped").table
    stats = (kept.provenance.get("source") or {}).get("distill_stats")
    if not stats:
        raise SddError(
            f"{folder} was selected from data that no distill run made, so it has no teacher or "
            "filter to record; select from a distill run's output to publish the selection"
        )
    return {**stats, "selection": _selection_summary(folder, kept.provenance)}, kept.table, None


def _distill_option_groups() -> dict[str, list[str]]:
    """The distill options by group (`decoding`, `filter`, ...): flat option names under each nested config."""
    groups: dict[str, list[str]] = {}
    for name, (path, _, _) in leaf_fields(DistillConfig).items():
        if len(path) > 1:
            groups.setdefault(path[0], []).append(name)
    return groups


def config_provenance(stats: dict, splits: dict[str, int], source_license: str | None) -> dict:
    """One config's provenance for the card and sdd_data.json (no local paths, no secrets)."""
    flat = stats["config"]
    groups = _distill_option_groups()
    source = stats["source"]
    is_hub_id = "/" in source["name"] and not Path(source["name"]).suffix
    return {
        "splits": splits,
        "source": {
            "name": source["name"],
            "hub_id": source["name"] if is_hub_id else None,
            "fingerprint": source["fingerprint"],
            "preset": source["preset"],
            "license": source_license,
        },
        "teacher": {"name": public_name(stats["teacher"]["name"]), "revision": stats["teacher"]["revision"]},
        "engine": stats["engine"],
        "template": stats["template"],
        "decoding": {name: flat[name] for name in groups["decoding"] if name in flat},
        "seed_policy": stats["seed_policy"],
        "on_failure": flat["on_failure"],
        "filter": {name: flat[name] for name in groups["filter"] if name in flat},
        "rows_in": stats["rows_in"],
        "rows_out": stats["rows_out"],
        "decisions": stats["decisions"],
        "reasons_by_decision": stats["reasons_by_decision"],
        "by_task": stats["by_task"],
        "tokens": stats["tokens"],
        "selection": stats.get("selection"),
        "distilled_with": stats["sdd_data_version"],
        "published_with": __version__,
    }


def _write_shards(folder: Path, config_name: str, split: str, table: pa.Table, shard_rows: int) -> list[str]:
    count = max(1, -(-len(table) // shard_rows))
    paths = []
    for index in range(count):
        relative = f"data/{config_name}/{split}-{index:05d}-of-{count:05d}.parquet"
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table.slice(index * shard_rows, shard_rows), folder / relative)
        paths.append(relative)
    return paths


def _stage(
    folder: Path,
    config: PublishConfig,
    config_name: str,
    dataset_path: str,
    state: RepoState,
    stats: dict,
    splits: dict[str, pa.Table],
) -> list[str]:
    """Write the shards, the card and sdd_data.json into `folder`; return their paths relative to it."""
    paths = [
        path
        for split, table in splits.items()
        for path in _write_shards(folder, config_name, split, table, config.shard_rows)
    ]
    split_rows = {split: len(table) for split, table in splits.items()}
    configs = {
        **(state.provenance or {}).get("configs", {}),
        config_name: config_provenance(stats, split_rows, config.source_license),
    }
    card = dataset_card(
        state.card,
        configs,
        config_name,
        dataset_path=dataset_path,
        license_id=config.license,
        pretty_name=config.pretty_name,
    )
    (folder / CARD_FILE).write_text(card, encoding="utf-8")
    (folder / PROVENANCE_FILE).write_text(json.dumps({"configs": configs}, indent=2, ensure_ascii=False) + "\n")
    return [*paths, CARD_FILE, PROVENANCE_FILE]


def _read_folder(folder: Path, config_name: str) -> RepoState:
    """What a folder published to before holds (nothing for a new or empty folder)."""
    if folder.exists() and any(folder.iterdir()) and not (folder / PROVENANCE_FILE).is_file():
        raise SddError(f"{folder} holds other files; give an empty folder or one that sdd-data published to")
    if not folder.exists() or not any(folder.iterdir()):
        return RepoState()
    card = folder / CARD_FILE
    files = sorted(str(path.relative_to(folder)) for path in (folder / "data" / config_name).glob("*"))
    return RepoState(
        card=card.read_text(encoding="utf-8") if card.is_file() else None,
        provenance=json.loads((folder / PROVENANCE_FILE).read_text()),
        files=tuple(files),
    )


def _save_local(config: PublishConfig, config_name: str, stats: dict, splits: dict[str, pa.Table]) -> PublishResult:
    folder = Path(config.output_dir)
    state = _read_folder(folder, config_name)
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".sdd-publish-", dir=folder) as staging:
        written = _stage(Path(staging), config, config_name, str(folder), state, stats, splits)
        shutil.rmtree(folder / "data" / config_name, ignore_errors=True)
        (folder / "data").mkdir(exist_ok=True)
        os.replace(Path(staging) / "data" / config_name, folder / "data" / config_name)
        for name in (PROVENANCE_FILE, CARD_FILE):
            os.replace(Path(staging) / name, folder / name)
    print(f"saved config {config_name!r} to {folder}: {', '.join(written)}")
    return PublishResult(str(folder), config_name, written, sorted(set(state.files) - set(written)), None)


def _push(config: PublishConfig, config_name: str, stats: dict, splits: dict[str, pa.Table]) -> PublishResult:
    api = hub_client(token_required=not config.dry_run)
    state = read_repo(api, config.repo_id, config.revision, config_name, CARD_FILE, PROVENANCE_FILE)
    target = f"{config.repo_id}@{config.revision}"
    if config.dry_run:
        folder = Path(config.output_dir)
        if folder.exists() and any(folder.iterdir()):
            raise SddError(f"{folder} is not empty; a dry run writes exactly what would be uploaded to an empty folder")
        written = _stage(folder, config, config_name, config.repo_id, state, stats, splits)
        deleted = sorted(set(state.files) - set(written))
        print(f"dry run: would commit to {target} (written to {folder}):")
        print(
            "\n".join(
                [
                    *(f"  upload {path} ({(folder / path).stat().st_size} bytes)" for path in written),
                    *(f"  delete {path}" for path in deleted),
                ]
            )
        )
        return PublishResult(target, config_name, written, deleted, None)
    with tempfile.TemporaryDirectory(prefix="sdd-publish-") as staging:
        written = _stage(Path(staging), config, config_name, config.repo_id, state, stats, splits)
        deleted = sorted(set(state.files) - set(written))
        commit = commit_folder(
            api,
            config.repo_id,
            config.revision,
            Path(staging),
            written,
            deleted,
            state,
            config.private,
            f"Publish config {config_name} (sdd-data {__version__})",
        )
    print(f"published config {config_name!r} to {target} in commit {commit}")
    return PublishResult(target, config_name, written, deleted, commit)


def publish(config: PublishConfig) -> PublishResult:
    """Save the distilled dataset locally or push it to the Hub, with its card and provenance."""
    _validate(config)
    stats, kept, dropped = read_publishable(Path(config.distilled))
    config_name = config.config_name or default_config_name(stats["source"]["name"])
    splits = {"train": kept}
    if config.include_dropped and dropped is not None and len(dropped):
        splits["dropped"] = dropped.cast(kept.schema)
    if config.repo_id is None:
        return _save_local(config, config_name, stats, splits)
    return _push(config, config_name, stats, splits)
