"""Dataset and model cards: rendered from the templates in `cards/`, merged into a card already published.

A dataset card's body is made of marked regions: one header and one section per config. Publishing a
config replaces its own section and the header and keeps everything else (other configs, text written
by hand); its YAML `configs` entry is replaced the same way and the other entries are kept. Model cards
describe a pruned model from its prune record (`sdd_data_prune.json`) in words: blocks removed, widths cut.
"""

from __future__ import annotations

import re
from importlib import resources

import yaml

from sdd_data import __version__
from sdd_data.errors import SddError

TEMPLATE_PACKAGE = "sdd_data.card_templates"
DATASET_TAGS = ("self-distillation", "pruning-recovery", "sdd-data")
MODEL_TAGS = ("pruning", "pruning-recovery", "sdd-data")
SIZE_CATEGORIES = (
    (1_000, "n<1K"),
    (10_000, "1K<n<10K"),
    (100_000, "10K<n<100K"),
    (1_000_000, "100K<n<1M"),
    (10_000_000, "1M<n<10M"),
    (100_000_000, "10M<n<100M"),
    (1_000_000_000, "100M<n<1B"),
)
FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?\n)?---[ \t]*(?:\n|\Z)", re.DOTALL)
HEADER = "header"
SECTION_END = re.compile(r"<!-- sdd-data:end config [^\n]*?-->")


def render_template(template_name: str, **values) -> str:
    """Render one template of `cards/` (jinja2; every variable it uses must be given)."""
    import jinja2

    text = resources.files(TEMPLATE_PACKAGE).joinpath(template_name).read_text(encoding="utf-8")
    environment = jinja2.Environment(
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )
    return environment.from_string(text).render(**values)


def size_category(rows: int) -> str:
    """The Hub's `size_categories` value for a number of rows."""
    return next((label for limit, label in SIZE_CATEGORIES if rows < limit), "n>1B")


def split_card(content: str) -> tuple[dict, str]:
    """A card's YAML metadata and its markdown body."""
    match = FRONT_MATTER.match(content)
    if not match:
        return {}, content
    metadata = yaml.safe_load(match.group(1) or "") or {}
    return (metadata if isinstance(metadata, dict) else {}), content[match.end() :]


def join_card(metadata: dict, body: str) -> str:
    """A card from its metadata and body."""
    front = yaml.safe_dump(metadata, sort_keys=False, allow_unicode=True, width=1000)
    return f"---\n{front}---\n\n{body.strip()}\n"


def _marker(edge: str, key: str) -> str:
    return f"<!-- sdd-data:{edge} {key} -->"


def _region(key: str, text: str) -> str:
    return f"{_marker('begin', key)}\n{text.strip()}\n{_marker('end', key)}"


def _region_pattern(key: str) -> re.Pattern:
    return re.compile(re.escape(_marker("begin", key)) + r".*?" + re.escape(_marker("end", key)), re.DOTALL)


def merge_regions(body: str, header: str, section_key: str, section: str) -> str:
    """The body with its header and one config section replaced (or added); everything else kept."""
    for key, text, place in ((HEADER, header, "start"), (section_key, section, "after-sections")):
        pattern, block = _region_pattern(key), _region(key, text)
        if pattern.search(body):
            body = pattern.sub(lambda _, replacement=block: replacement, body, count=1)
        elif place == "start":
            body = f"{block}\n\n{body.strip()}".strip()
        else:
            ends = list(SECTION_END.finditer(body))
            cut = (ends[-1] if ends else _region_pattern(HEADER).search(body)).end()
            body = f"{body[:cut].rstrip()}\n\n{block}\n\n{body[cut:].strip()}".strip()
    return body


def _union(existing, added: list[str]) -> list[str]:
    values = existing if isinstance(existing, list) else ([existing] if existing else [])
    return list(dict.fromkeys([*values, *added]))


def dataset_card_metadata(
    existing: dict, configs: dict[str, dict], config_name: str, *, license_id: str | None, pretty_name: str
) -> dict:
    """The card's YAML metadata: this config's entry replaced, other configs and unknown keys kept."""
    splits = configs[config_name]["splits"]
    entry = {
        "config_name": config_name,
        "data_files": [{"split": split, "path": f"data/{config_name}/{split}-*"} for split in splits],
    }
    existing_configs = existing.get("configs") or []
    if not isinstance(existing_configs, list) or not all(isinstance(item, dict) for item in existing_configs):
        raise SddError("the card's YAML metadata has a `configs` that is not a list of mappings")
    kept = [item for item in existing_configs if item.get("config_name") != config_name]
    hub_sources = [config["source"]["hub_id"] for config in configs.values() if config["source"].get("hub_id")]
    total_rows = sum(sum(config["splits"].values()) for config in configs.values())
    metadata = {
        "pretty_name": pretty_name,
        "license": license_id or existing.get("license") or "unknown",
        "task_categories": _union(existing.get("task_categories"), ["text-generation"]),
        "tags": _union(existing.get("tags"), list(DATASET_TAGS)),
        "size_categories": [size_category(total_rows)],
        "source_datasets": _union(existing.get("source_datasets"), hub_sources),
        "configs": [*kept, entry],
    }
    if not metadata["source_datasets"]:
        del metadata["source_datasets"]
    return {**metadata, **{key: value for key, value in existing.items() if key not in metadata}}


def dataset_card(
    existing: str | None,
    configs: dict[str, dict],
    config_name: str,
    *,
    dataset_path: str,
    license_id: str | None,
    pretty_name: str | None,
) -> str:
    """The dataset card after publishing `config_name`, merged into the `existing` card if there is one.

    `configs` is the provenance of every sdd-data config of the dataset (as in `sdd_data.json`).
    """
    metadata, body = split_card(existing or "")
    name = pretty_name or metadata.get("pretty_name") or dataset_path.rstrip("/").rsplit("/", 1)[-1]
    header = render_template(
        "dataset_card.md",
        pretty_name=name,
        sdd_data_version=__version__,
        dataset_path=dataset_path,
        configs=[
            {
                "name": key,
                "splits": value["splits"],
                "source": value["source"]["name"],
                "teacher": value["teacher"]["name"],
                "teacher_quantization": value["teacher"].get("quantization"),
            }
            for key, value in configs.items()
        ],
    )
    config = configs[config_name]
    teacher = {"revision": None, "quantization": None, **config["teacher"]}  # older provenance lacks some keys
    section = render_template(
        "dataset_config.md", name=config_name, dataset_path=dataset_path, **{**config, "teacher": teacher}
    )
    merged_metadata = dataset_card_metadata(metadata, configs, config_name, license_id=license_id, pretty_name=name)
    return join_card(merged_metadata, merge_regions(body, header, f"config {config_name}", section))


def model_card(
    *,
    model_name: str,
    base_model: str,
    pruning: dict | None,
    dataset: str,
    dataset_config: str | None = None,
    recipe: dict,
    evaluation: list[dict],
    license_id: str | None = None,
    endpoint: str = "https://huggingface.co",
) -> str:
    """The card of a recovered model: base model, pruning (a prune record, or None), training data, recipe and
    evaluation table."""
    metadata = {
        "base_model": base_model,
        "license": license_id or "other",
        "datasets": [dataset],
        "tags": list(MODEL_TAGS),
        "library_name": "transformers",
        "pipeline_tag": "text-generation",
    }
    body = render_template(
        "model_card.md",
        model_name=model_name,
        base_model=base_model,
        pruning=describe_pruning(pruning) if pruning else None,
        dataset=dataset,
        dataset_url=f"{endpoint.rstrip('/')}/datasets/{dataset}",
        dataset_config=dataset_config,
        recipe=recipe,
        evaluation=evaluation,
        sdd_data_version=__version__,
    )
    return join_card(metadata, body)


HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*")


def _score_text(value: float | None, higher_is_better: bool) -> str:
    """A score in % (higher is better), or as it is (a negative log-likelihood); `-` when there is none."""
    if value is None:
        return "-"
    return f"{100 * value:.1f}" if higher_is_better else f"{value:.3f}"


def _retention_text(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _evaluation_table(evaluation: dict) -> dict:
    """The card's evaluation table: one row per task (and the average), this model beside the baseline."""
    baseline = evaluation["baseline"]
    header = ["task", "metric", f"`{evaluation['model']}`"]
    if baseline:
        header += [f"`{baseline}`", "retention %"]
    rows = []
    for task in evaluation["tasks"]:
        higher = task["higher_is_better"]
        metric = task["metric"] + (" (%)" if higher else ", lower is better")
        row = [task["task"], metric, _score_text(task["score"], higher)]
        if baseline:
            row += [
                _score_text(task["baseline_score"], higher),
                _retention_text(task["retention"]),
            ]
        rows.append(row)
    average = evaluation.get("average")
    if average:
        row = ["average", "(%)", _score_text(average["score"], True)]
        if baseline:
            row += [
                _score_text(average["baseline_score"], True),
                _retention_text(average["retention"]),
            ]
        rows.append(row)
    return {**evaluation, "header": header, "rows": rows}


def model_index(model_name: str, evaluation: dict) -> list[dict]:
    """The card's `model-index` metadata (what the Hub reads as evaluation results) from an evaluation."""
    from huggingface_hub import EvalResult
    from huggingface_hub.repocard_data import eval_results_to_model_index

    results = [
        EvalResult(
            task_type="text-generation",
            task_name="Text Generation",
            dataset_type=task["task"],
            dataset_name=task["task"],
            metric_type=task["metric"],
            metric_name=task["metric"] + (" (%)" if task["higher_is_better"] else ""),
            metric_value=round(100 * task["score"], 2) if task["higher_is_better"] else round(task["score"], 4),
        )
        for task in evaluation["tasks"]
    ]
    return eval_results_to_model_index(model_name, results)


WIDTH_AXES = (
    ("intermediate_size", "MLP width", " in every block"),
    ("num_key_value_heads", "KV heads", " per block"),
    ("hidden_size", "hidden size", ""),
)


def describe_pruning(record: dict) -> dict:
    """`description` (a table cell), `summary` (after "the base model with ...") and `short` (a few words)."""
    cells, summaries, shorts = [], [], []
    blocks = record.get("removed_blocks") or []
    if blocks:
        cells.append(_blocks_cell(record, blocks))
        summaries.append(f"{len(blocks)} of its decoder blocks removed")
        shorts.append(f"blocks {', '.join(map(str, blocks))} removed")
    shape = record.get("shape") or {}
    before, after = shape.get("before") or {}, shape.get("after") or {}
    widths = []
    for key, name, where in WIDTH_AXES:
        if before.get(key) is not None and before.get(key) != after.get(key):
            widths.append(f"{name} {before[key]} → {after[key]}{where}")
            if key == "num_key_value_heads":
                widths[-1] += f" (query heads {before['num_attention_heads']} → {after['num_attention_heads']})"
            summaries.append(f"its {name} cut from {before[key]} to {after[key]}")
            shorts.append(f"{name} {before[key]} → {after[key]}")
    if widths:
        cells.append(f"{', '.join(widths)}, chosen by `{record.get('method')}`")
    if before.get("parameters") and after.get("parameters"):
        cells.append(f"{_millions(before['parameters'])} → {_millions(after['parameters'])} parameters")
    return {
        "description": "; ".join(cells) or "nothing recorded",
        "summary": " and ".join(summaries) or "pruned",
        "short": ", ".join(shorts) or "pruned",
    }


def _blocks_cell(record: dict, blocks: list[int]) -> str:
    before, after = record.get("num_blocks_before"), record.get("num_blocks_after")
    method = record.get("block_method", record.get("method"))
    listed = ", ".join(map(str, blocks))
    count = (
        f"{len(blocks)} of {before} decoder blocks"
        if before
        else f"{len(blocks)} decoder block" + "s" * (len(blocks) > 1)
    )
    text = f"removed {count} (0-based: {listed})"
    if method == "explicit":
        text += " given by hand"
    elif method:
        text += f" chosen by `{method}`"
    return text + (f"; {after} left" if after else "")


def _millions(count: int) -> str:
    return f"{count / 1e6:.1f}M"


def _describe(model: dict) -> str:
    """What one model of a merge is, in a few words."""
    parts = []
    if model.get("pruning"):
        parts.append(f"pruned ({describe_pruning(model['pruning'])['short']})")
    if model.get("training"):
        parts.append(f"fine-tuned on `{model['training'].get('dataset')}`")
    if parts:
        return ", ".join(parts)
    return "no sdd-data records found for it" if model.get("found") else "a Hub model (not followed further)"


def recovered_model_card(
    existing: str | None,
    provenance: dict,
    *,
    model_name: str,
    load_path: str,
    license_id: str | None,
    endpoint: str = "https://huggingface.co",
) -> str:
    """The card of a published model: how it was made (base model, removed blocks, recovery data, recipe,
    merge) and its evaluation, as a table and as model-index metadata; unknown metadata of `existing` is kept."""
    existing_metadata, _ = split_card(existing or "")
    base_model, pruning, training = provenance.get("base_model"), provenance.get("pruning"), provenance.get("training")
    merge, dataset_repo, evaluation = (
        provenance.get("merge"),
        provenance.get("dataset_repo"),
        provenance.get("evaluation"),
    )
    base_model_text = f"`{base_model}`" if base_model else "an unrecorded base model"
    dataset_name = dataset_repo or (training or {}).get("dataset")
    data_text = (
        f"[`{dataset_repo}`]({endpoint.rstrip('/')}/datasets/{dataset_repo})" if dataset_repo else f"`{dataset_name}`"
    )
    summary = base_model_text[0].upper() + base_model_text[1:] if not base_model else base_model_text
    if pruning:  # a prune record, or the pruning facts a published model keeps: both read the same
        pruning = {**pruning, **describe_pruning(pruning)}
        summary += f" with {pruning['summary']}"
    if training:
        summary += (
            f", fine-tuned on {data_text} to recover what the pruning took"
            if pruning
            else f", fine-tuned on {data_text}"
        )
    elif dataset_repo:
        summary += f"; recovery data: {data_text}"
    if merge:
        summary += ", then merged with SLERP"
    if merge:
        merge = {**merge, "models": [{**model, "description": _describe(model)} for model in merge.get("models", [])]}
    body = render_template(
        "recovered_model.md",
        model_name=model_name,
        summary=summary + ".",
        base_model_text=base_model_text,
        pruning=pruning,
        training=training,
        dataset_repo=dataset_repo,
        data_text=data_text,
        merge=merge,
        evaluation=_evaluation_table(evaluation) if evaluation else None,
        load_path=load_path,
        sdd_data_version=__version__,
    )
    tags = list(MODEL_TAGS) + (["merge"] if merge else [])
    metadata: dict = {
        "base_model": base_model if base_model and HUB_ID.fullmatch(base_model) else None,
        "license": license_id or existing_metadata.get("license") or "other",
        "datasets": [dataset_repo] if dataset_repo else None,
        "tags": _union(existing_metadata.get("tags"), tags),
        "library_name": "transformers",
        "pipeline_tag": "text-generation",
        "model-index": model_index(model_name, evaluation) if evaluation else None,
    }
    metadata = {key: value for key, value in metadata.items() if value is not None}
    kept = {key: value for key, value in existing_metadata.items() if key not in metadata and key != "model-index"}
    return join_card({**metadata, **kept}, body)
