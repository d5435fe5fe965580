"""What a model's records say about how it was made, and what an eval folder says about how it scores.

A prune output holds `sdd_data_prune.json` (the base model and the removed blocks); a train output holds
a copy of its start's prune record and `sdd_data_train.json` (the recipe and the data); a merge output
holds `merge_config.yaml`, whose two models are followed back, when they are folders this machine still
has, to their own records. A model that `publish --model` saved holds all of it in its `sdd_data.json`.
Everything kept here is fit to publish: models and data are named by their public names, never by a
local path.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from sdd_data import artifacts
from sdd_data.artifacts import MERGE_RECIPE_COPY, PROVENANCE_FILE, PRUNE_RECORD, TRAIN_RECORD
from sdd_data.data.stage_data import read_json_object
from sdd_data.errors import SddError
from sdd_data.hub import public_name

MAX_DEPTH = 4
"""How many merges deep the records are followed back (a merge of merges of merges...)."""


def _public(value: Any) -> str | None:
    return public_name(str(value)) if isinstance(value, str) and value else None


def _pruning(record: dict, where: Path) -> dict:
    blocks = record.get("removed_blocks")
    if not isinstance(blocks, list) or not all(isinstance(block, int) for block in blocks):
        raise SddError(f"{where} lacks a valid `removed_blocks` (a list of block numbers); the folder is damaged")
    shape = record.get("shape")
    if shape is not None and not (
        isinstance(shape, dict) and all(isinstance(shape.get(k), dict) for k in ("before", "after"))
    ):
        raise SddError(f"{where} has a `shape` without `before` and `after` objects; the folder is damaged")
    return {
        "method": record.get("method"),
        "removed_blocks": blocks,
        "num_blocks_before": record.get("num_blocks_before"),
        "num_blocks_after": record.get("num_blocks_after"),
        "block_method": record.get("block_method"),
        "shape": shape,
    }


def _prune_base(record: dict) -> str | None:
    source = record.get("source_model")
    name = source.get("name") if isinstance(source, dict) else None
    return _public(name or record.get("base_model"))


def _training(record: dict, where: Path) -> dict:
    recipe = record.get("recipe")
    if not isinstance(recipe, dict):
        raise SddError(f"{where} lacks a valid `recipe` (an object); the folder is damaged")
    return {
        "method": recipe.get("method"),
        "dataset": _public(recipe.get("dataset")),
        "rows": record.get("rows"),
        "recipe": recipe,
    }


def _merged_folder(name: str, merge_folder: Path) -> Path | None:
    """The local folder a merge recipe's model names: as written (relative to where merge ran), or beside
    the merge output; None for a Hub id or a folder no longer there."""
    path = Path(name).expanduser()
    candidates = [path] if path.is_absolute() else [path, merge_folder.parent / path]
    return next((candidate for candidate in candidates if (candidate / artifacts.MODEL_CONFIG).is_file()), None)


def _merge(folder: Path, depth: int) -> tuple[dict, list[dict]]:
    """The merge recipe (model names made public) and the lineage of each of its two models."""
    import yaml

    from sdd_data.merge import read_recipe

    where = folder / MERGE_RECIPE_COPY
    recipe = read_recipe(where)
    names = {recipe.base_model: _public(recipe.base_model), recipe.other_model: _public(recipe.other_model)}

    def public_values(value: Any) -> Any:
        if isinstance(value, dict):
            return {key: public_values(item) for key, item in value.items()}
        if isinstance(value, list):
            return [public_values(item) for item in value]
        return names.get(value, value) if isinstance(value, str) else value

    text = yaml.safe_dump(public_values(yaml.safe_load(recipe.text)), sort_keys=False)
    inputs = []
    for name in (recipe.base_model, recipe.other_model):
        local = _merged_folder(name, folder)
        found = trace_model(local, depth + 1) if local is not None and depth < MAX_DEPTH else {}
        inputs.append({**found, "name": names[name], "found": local is not None})
    return {"recipe": text, "base_model": names[recipe.base_model], "other_model": names[recipe.other_model]}, inputs


def trace_model(folder: Path, depth: int = 0) -> dict:
    """How the model in `folder` was made, as far as its records tell: kind, base model, pruning, training, merge."""
    if artifacts.is_published_model(folder):  # saved by publish --model: its sdd_data.json holds all of it
        return dict(read_json_object(folder / PROVENANCE_FILE, "the published model folder")["model"])
    lineage: dict[str, Any] = {"kind": "checkpoint", "base_model": None, "pruning": None, "training": None}
    lineage["merge"] = None
    prune_path, train_path = folder / PRUNE_RECORD, folder / TRAIN_RECORD
    if prune_path.is_file():
        record = read_json_object(prune_path, "the model folder")
        lineage.update(kind="prune", base_model=_prune_base(record), pruning=_pruning(record, prune_path))
    if train_path.is_file():
        training = _training(read_json_object(train_path, "the model folder"), train_path)
        lineage.update(kind="train", training=training)
        lineage["base_model"] = lineage["base_model"] or _public(training["recipe"].get("model_name_or_path"))
    if (folder / MERGE_RECIPE_COPY).is_file():
        merge, inputs = _merge(folder, depth)
        merge["models"] = [
            {key: item.get(key) for key in ("name", "kind", "found", "pruning", "training")} for item in inputs
        ]
        first = next((item for item in inputs if item.get("pruning")), None)
        trained = next((item for item in inputs if item.get("training")), None)
        lineage.update(
            kind="merge",
            merge=merge,
            pruning=lineage["pruning"] or (first or {}).get("pruning"),
            training=lineage["training"] or (trained or {}).get("training"),
            base_model=lineage["base_model"]
            or next((item["base_model"] for item in inputs if item.get("base_model")), None),
        )
    return lineage


# --- evaluation -----------------------------------------------------------------------------------------


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _choose_model(report: dict, model_folder: Path, eval_model: str | None, where: Path) -> str:
    models = report["models"]
    if eval_model is not None:
        if eval_model not in models:
            raise SddError(f"--eval-model {eval_model!r} is not in {where} (it holds {', '.join(models)})")
        return eval_model
    here = model_folder.resolve()
    matches = [
        name
        for name, entry in models.items()
        if isinstance(entry, dict) and isinstance(entry.get("path"), str) and Path(entry["path"]).resolve() == here
    ]
    if len(matches) != 1:
        raise SddError(
            f"{where} holds no single model evaluated from {model_folder} (it holds {', '.join(models)}); "
            "give --eval-model NAME, the name this model has in the eval's --models"
        )
    return matches[0]


def read_evaluation(eval_folder: Path, model_folder: Path, eval_model: str | None) -> dict:
    """This model's scores in an eval folder's results.json, beside the baseline's, for the card."""
    output = artifacts.detect(eval_folder)
    if output is None or output.kind != artifacts.EVAL_RESULTS_KIND:
        found = f"a {artifacts.WRITTEN_BY[output.kind]} output" if output else "not a stage output"
        raise SddError(
            f"--eval {eval_folder} is not an eval output ({found}); give the --output folder of sdd-data eval"
        )
    where = eval_folder / artifacts.EVAL_RESULTS
    report = read_json_object(where, "the eval folder")
    models, tasks, baseline = report.get("models"), report.get("tasks"), report.get("baseline")
    if not (isinstance(models, dict) and models and isinstance(tasks, dict) and baseline in (models or {})):
        raise SddError(f"{where} lacks `models`, `tasks` or `baseline`: the eval folder is damaged; evaluate again")
    name = _choose_model(report, model_folder, eval_model, where)
    rows = []
    for label, task in tasks.items():
        scores = task.get("scores") if isinstance(task, dict) else None
        if not isinstance(scores, dict):
            raise SddError(f"{where}: task {label!r} lacks its scores; the eval folder is damaged: evaluate again")
        score = _number(scores.get(name))
        if score is None or not math.isfinite(score) or not isinstance(task.get("metric"), str):
            raise SddError(f"{where}: task {label!r} lacks a metric or a score for {name}; evaluate again")
        higher = task.get("higher_is_better", True) is not False
        retained = (report.get("retention") or {}).get(name) or {}
        rows.append(
            {
                "task": label,
                "metric": task["metric"],
                "higher_is_better": higher,
                "rows": task.get("rows"),
                "score": score,
                "baseline_score": _number(scores.get(baseline)),
                "retention": _number(retained.get(label)) if higher else None,
            }
        )
    average = _number((report.get("average") or {}).get(name))
    ranked = any(row["higher_is_better"] for row in rows)
    return {
        "model": name,
        "baseline": None if baseline == name else baseline,
        "tasks": rows,
        "average": None
        if average is None or not ranked
        else {
            "score": average,
            "baseline_score": _number((report.get("average") or {}).get(baseline)),
            "retention": _number(((report.get("retention") or {}).get(name) or {}).get("average")),
        },
    }
