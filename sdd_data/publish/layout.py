"""The files a publish writes, the same for every target: Parquet shards, the merged card and sdd_data.json.

`stage_files` writes them into a folder; `config_provenance` is what the card and sdd_data.json record
about one config. What the target already holds (its card and the provenance of its other configs) is
merged in, and checked first: a damaged file there is one line naming it, never a stack trace.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from sdd_data import __version__
from sdd_data.artifacts import CARD_FILE, PROVENANCE_FILE
from sdd_data.cards import dataset_card
from sdd_data.config import leaf_fields
from sdd_data.distill import DistillConfig
from sdd_data.errors import SddError, first_line
from sdd_data.hub import public_name
from sdd_data.publish.config import PublishConfig
from sdd_data.publish.hub_repo import NOTHING_PUBLISHED, RepoState

REPORT_PAGE = "report.html"
"""The inspect page of a config published with --report, inside the config's data folder."""


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
        "teacher": {
            "name": public_name(stats["teacher"]["name"]),
            "revision": stats["teacher"]["revision"],
            "quantization": stats["teacher"].get("quantization"),
        },
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
        "conversations": stats.get("conversations"),
        "attempts": stats.get("attempts"),
        "copies": stats.get("copies"),
        "turn_context": flat.get("turn_context", "original"),
        "reasoning": flat.get("reasoning", "separate"),
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


def _damaged(where: str, what: str) -> SddError:
    return SddError(f"{where} {what}; {NOTHING_PUBLISHED}; fix or delete that file, then publish again")


def existing_configs(state: RepoState, where: str) -> dict[str, dict]:
    """The provenance of the configs the target already holds, checked to have what the card lists."""
    configs = (state.provenance or {}).get("configs") or {}
    if not isinstance(configs, dict):
        raise _damaged(where, "has a `configs` that is not an object")
    for name, entry in configs.items():
        try:
            ok = (
                isinstance(entry["splits"], dict)
                and isinstance(entry["source"]["name"], str)
                and isinstance(entry["teacher"]["name"], str)
            )
        except (KeyError, TypeError):
            ok = False
        if not ok:
            raise _damaged(where, f"holds config {name!r} without its splits, source name or teacher name")
    return configs


def stage_files(
    folder: Path,
    config: PublishConfig,
    config_name: str,
    dataset_path: str,
    state: RepoState,
    stats: dict,
    splits: dict[str, pa.Table],
    where: str,
) -> list[str]:
    """Write the shards, the card and sdd_data.json into `folder`; return their paths relative to it.

    `where` names the target in errors about the card and sdd_data.json it already holds.
    """
    import yaml

    provenance = config_provenance(stats, {split: len(table) for split, table in splits.items()}, config.source_license)
    report = f"data/{config_name}/{REPORT_PAGE}" if config.report else None
    if report:
        provenance["report"] = report
    configs = {**existing_configs(state, f"{PROVENANCE_FILE} of {where}"), config_name: provenance}
    try:
        card = dataset_card(
            state.card,
            configs,
            config_name,
            dataset_path=dataset_path,
            license_id=config.license,
            pretty_name=config.pretty_name,
        )
    except yaml.YAMLError as error:
        raise _damaged(f"{CARD_FILE} of {where}", f"has unreadable YAML metadata ({first_line(error)})") from None
    except SddError as error:
        raise _damaged(f"{CARD_FILE} of {where}:", str(error)) from None
    paths = [
        path
        for split, table in splits.items()
        for path in _write_shards(folder, config_name, split, table, config.shard_rows)
    ]
    (folder / CARD_FILE).write_text(card, encoding="utf-8")
    (folder / PROVENANCE_FILE).write_text(json.dumps({"configs": configs}, indent=2, ensure_ascii=False) + "\n")
    if report:
        from sdd_data.inspect import InspectConfig, inspect_output

        # made from the folder just written, so the page shows the published provenance (no local paths)
        page = InspectConfig(path=str(folder), output=str(folder / report), data_config=config_name)
        inspect_output(page, show_progress=False, label=dataset_path)
        paths.append(report)
    return [*paths, CARD_FILE, PROVENANCE_FILE]
