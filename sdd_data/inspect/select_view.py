"""The select view: clusters, outcome counts and every input row's outcome (selected, set aside, rejected)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from sdd_data import artifacts
from sdd_data.data.stage_data import read_json_object, read_stage_dataset
from sdd_data.errors import SddError
from sdd_data.inspect import charts
from sdd_data.inspect.html_parts import InspectView, View, ViewOptions, cell, facts, section, table
from sdd_data.inspect.rows import categorical, cut_texts

CLUSTER_COLUMNS = ("cluster", "size", "mean_degradation", "budget", "selected", "near_duplicates", "concept_conflicts")
REPORT_FACTS = ("method", "rows", "budget", "selected", "shortfall", "n_clusters", "k_rule", "cluster_mode")


def outcome_of(reason: str | None) -> str:
    """A row's outcome from its reason: selected, budget_exhausted, near_duplicate, concept_conflict or set_aside."""
    reason = reason or ""
    if reason in ("selected", "budget_exhausted"):
        return reason
    if reason.startswith("near_duplicate_of:"):
        return "near_duplicate"
    if reason.startswith("concept_conflict:"):
        return "concept_conflict"
    return "set_aside"


def conflict_with(reason: str | None, ids: list[str]) -> str:
    """What a rejected row conflicted with: the id of the row it duplicates, or the two concepts that clashed."""
    reason = reason or ""
    if reason.startswith("near_duplicate_of:"):
        index = reason.split(":", 1)[1]
        return f"near duplicate of row {ids[int(index)]}" if index.isdigit() and int(index) < len(ids) else reason
    if reason.startswith("concept_conflict:"):
        first, _, second = reason.split(":", 1)[1].partition("|")
        return f"concepts “{first}” and “{second}” conflict with the rows taken before it"
    return ""


def _texts_by_id(tables: list[Any]) -> dict[str, tuple[str | None, str | None]]:
    """id -> (user turn, response) from tables of stage rows (instruction + input, response)."""
    found: dict[str, tuple[str | None, str | None]] = {}
    for part in tables:
        names = part.column_names
        if "id" not in names:
            continue
        ids = part.column("id").to_pylist()
        instructions = part.column("instruction").to_pylist() if "instruction" in names else [None] * len(ids)
        inputs = part.column("input").to_pylist() if "input" in names else [None] * len(ids)
        responses = part.column("response").to_pylist() if "response" in names else [None] * len(ids)
        for row_id, instruction, extra, response in zip(ids, instructions, inputs, responses):
            turn = "\n\n".join(text for text in (instruction, extra) if text)
            found.setdefault(str(row_id), (turn or None, response))
    return found


def _source_tables(provenance: dict) -> tuple[list[Any], str | None]:
    """The rows of the stage output the selection read, when it is still there (for rows that were not selected)."""
    data = (provenance.get("config") or {}).get("data")
    if not isinstance(data, str) or artifacts.detect(data) is None:
        return [], None
    tables = []
    for split in ("train", "dropped"):
        try:
            tables.append(read_stage_dataset(data, split).table)
        except SddError:
            continue
    return tables, data if tables else None


def select_view(output: artifacts.StageOutput, options: ViewOptions) -> View:
    """The page of a select output."""
    import pyarrow.parquet as pq

    folder, max_chars, budget_chars = output.folder, options.max_chars, options.budget_chars
    report = read_json_object(folder / artifacts.SELECT_REPORT)
    provenance = read_json_object(folder / artifacts.PROVENANCE_FILE)
    outcome = pq.read_table(folder / artifacts.SELECT_OUTCOME)
    ids = [str(value) for value in outcome.column("id").to_pylist()]
    reasons = outcome.column("reason").to_pylist()

    def column(name: str) -> list:
        return outcome.column(name).to_pylist() if name in outcome.column_names else [None] * len(ids)

    selected_rows = read_stage_dataset(folder).table
    source_tables, source_folder = _source_tables(provenance)
    texts = _texts_by_id(source_tables)
    texts.update(_texts_by_id([selected_rows]))
    turns = [texts.get(row_id, (None, None))[0] for row_id in ids]
    responses = [texts.get(row_id, (None, None))[1] for row_id in ids]
    cut, limit, cut_count = cut_texts({"instruction": turns, "response": responses}, max_chars, budget_chars)
    outcomes = [outcome_of(reason) for reason in reasons]
    clusters = column("cluster")
    rows = {
        "n": len(ids),
        "columns": {
            "id": ids,
            "outcome": categorical(outcomes),
            "cluster": categorical(["–" if value is None or value < 0 else str(value) for value in clusters]),
            "reason": reasons,
            "selection_reason": column("selection_reason"),
            "conflict": [conflict_with(reason, ids) for reason in reasons],
            "rank": column("rank"),
            "ies": column("ies"),
            "degradation": column("degradation"),
            "prompt_tokens": column("prompt_tokens"),
            "response_tokens": column("response_tokens"),
            **cut,
        },
        "list": ["id", "outcome", "cluster", "rank", "instruction"],
        "filters": ["outcome", "cluster"],
        "search": ["id", "instruction", "response", "reason"],
        "detail": "select",
        "text_limit": limit,
        "texts_cut": cut_count,
        "full_rows": f"{artifacts.SELECT_OUTCOME}, {artifacts.DATA_DIR}/"
        + (f" and the source run {source_folder}" if source_folder else ""),
    }
    counts = Counter(outcomes)
    numbers = {
        **{key: report.get(key) for key in REPORT_FACTS if key in report},
        "set_aside": (provenance.get("counts") or {}).get("set_aside", counts.get("set_aside", 0)),
        "outcomes": dict(counts),
        "clusters": report.get("clusters") or [],
    }
    summary = [
        section(
            "Selection",
            facts(
                [(key.replace("_", " "), numbers[key], key) for key in REPORT_FACTS if key in numbers]
                + [("set aside before selection", numbers["set_aside"], "set_aside")]
                + [(f"outcome {name}", count, f"outcomes.{name}") for name, count in counts.items()]
            ),
        )
    ]
    scorer = provenance.get("scorer") or {}
    models = [
        ("original model", (provenance.get("original_model") or {}).get("name"), None),
        ("pruned model", (provenance.get("pruned_model") or {}).get("name"), None),
        ("embedder", (provenance.get("embedder") or {}).get("name"), None),
        ("degradation", scorer.get("note"), None),
    ]
    summary.append(section("Models and scores", facts(models)))
    chart_list = [
        charts.horizontal_bars(
            "Rows by outcome",
            [(name, count, charts.PALETTE[index]) for index, (name, count) in enumerate(counts.most_common())],
        )
    ]
    if numbers["clusters"]:
        summary.append(
            section(
                "Clusters",
                table(
                    CLUSTER_COLUMNS,
                    (
                        [cell(row.get(name), f"clusters.{row.get('cluster')}.{name}") for name in CLUSTER_COLUMNS]
                        for row in numbers["clusters"]
                    ),
                ),
                wide=True,
            )
        )
        labels = [str(row["cluster"]) for row in numbers["clusters"]]
        chart_list.append(
            charts.grouped_bars(
                "Rows per cluster: size, budget, selected",
                labels,
                {name: [row[name] for row in numbers["clusters"]] for name in ("size", "budget", "selected")},
                " rows",
            )
        )
        chart_list.append(
            charts.grouped_bars(
                "Mean degradation per cluster",
                labels,
                {"mean degradation": [row["mean_degradation"] for row in numbers["clusters"]]},
            )
        )
    method = report.get("method", "?")
    title = f"Select: {numbers.get('selected', '?')} of {numbers.get('rows', len(ids))} rows ({method})"
    return View("select", title, numbers, "".join(summary), chart_list, rows)


SELECT_VIEW = InspectView("a select output", f"{artifacts.SELECT_REPORT} or rows", select_view)
