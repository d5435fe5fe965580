"""The distill view: a distill run (stats.json and its rows) or a published config (its provenance and splits)."""

from __future__ import annotations

import json
from collections import Counter
from html import escape
from pathlib import Path
from typing import Any

from sdd_data import artifacts
from sdd_data.data.conversations import transcript
from sdd_data.data.stage_data import read_stage_dataset
from sdd_data.errors import SddError
from sdd_data.inspect import charts
from sdd_data.inspect.html_parts import InspectView, View, ViewOptions, cell, code, facts, section, table
from sdd_data.inspect.rows import categorical, cut_texts, word_count

TEXT_COLUMNS = (
    "context",
    "instruction",
    "input",
    "response",
    "teacher_response",
    "teacher_reasoning",
    "reference_answer",
    "extracted_answer",
)
ROW_COLUMNS = ("id", "task", "decision", "reason", "finish_reason", *TEXT_COLUMNS, "prompt_tokens", "teacher_tokens")
READ_COLUMNS = (*ROW_COLUMNS, "messages", "turns", "conversation")
DECODING_KEYS = ("max_new_tokens", "temperature", "top_p", "top_k", "seed")
DECISION_ORDER = ("rewrite", "original", "dropped")


def _column(table: Any, name: str) -> list:
    return table.column(name).to_pylist() if name in table.column_names else [None] * table.num_rows


def _rows(folder: Path, kind: str, config_name: str | None) -> tuple[dict[str, list], str]:
    """Every row, kept then dropped, as columns; and where the whole rows are."""
    kept = read_stage_dataset(folder, "train", config_name)
    tables = [kept.table]
    try:
        tables.append(read_stage_dataset(folder, "dropped", config_name).table)
    except SddError:
        pass  # a published config without a dropped split
    columns: dict[str, list] = {name: [] for name in ROW_COLUMNS}
    for part in tables:
        for row in part.select([name for name in part.column_names if name in READ_COLUMNS]).to_pylist():
            for entry in entries(row):
                for name in ROW_COLUMNS:
                    columns[name].append(entry.get(name))
    if kind == artifacts.DISTILL_RUN:
        where = f"{artifacts.DISTILLED_PARQUET} and {artifacts.DROPPED_PARQUET}"
    else:
        where = f"{artifacts.DATA_DIR}/{kept.config_name}/*.parquet"
    return columns, where


def entries(row: dict) -> list[dict]:
    """The rows of the page for one stored row: itself, or one per assistant turn of a conversation, each with
    the conversation before it as `context` (its id is the conversation's and the turn's place)."""
    records = row.get("turns")
    if not records:
        return [row]
    turns = row.get("messages") or json.loads(row.get("conversation") or "[]")
    listed = []
    for record in records:
        place = record["turn"]
        earlier = turns[: place - 1] if place >= 1 else []
        listed.append(
            {
                **record,
                "id": f"{row['id']} · turn {place}",
                "task": row.get("task"),
                "context": transcript([{**turn, "content": turn.get("content") or ""} for turn in earlier]),
                "instruction": turns[place - 1]["content"] if place >= 1 else "",
                "input": "",
                "reference_answer": None,
            }
        )
    return listed


def summary_numbers(stats: dict) -> dict:
    """The summary's numbers from stats.json (or a published config's provenance), JSON-ready."""
    config = stats.get("config") or {}
    decoding = stats.get("decoding") or {key: config[key] for key in DECODING_KEYS if key in config}
    teacher = stats.get("teacher") or {}
    return {
        "rows_in": stats.get("rows_in"),
        "rows_out": stats.get("rows_out"),
        "decisions": dict(stats.get("decisions") or {}),
        "reasons": dict(stats.get("reasons") or {}),
        "reasons_by_decision": {name: dict(value) for name, value in (stats.get("reasons_by_decision") or {}).items()},
        "by_task": stats.get("by_task") or {},
        "tokens": dict(stats.get("tokens") or {}),
        "throughput": dict(stats.get("throughput") or {}),
        "teacher": {key: teacher.get(key) for key in ("name", "revision", "quantization")},
        "engine": stats.get("engine") or {},
        "template": stats.get("template") or {},
        "decoding": decoding,
        "seed_policy": stats.get("seed_policy"),
        "on_failure": stats.get("on_failure") or config.get("on_failure"),
        "source": (stats.get("source") or {}).get("name"),
        "conversations": stats.get("conversations"),
    }


def _summary_html(numbers: dict) -> str:
    decisions = numbers["decisions"]
    overview = facts(
        [
            ("source", numbers["source"], None),
            ("rows in", numbers["rows_in"], "rows_in"),
            ("rows out", numbers["rows_out"], "rows_out"),
            *((f"decision {name}", count, f"decisions.{name}") for name, count in decisions.items()),
            ("on failure", numbers["on_failure"], None),
        ]
    )
    teacher = numbers["teacher"]
    model_facts = [("teacher", teacher["name"], None), ("revision", teacher["revision"], None)]
    if teacher.get("quantization"):
        model_facts.append(("quantization", teacher["quantization"], None))
    model_facts += [
        ("engine" if key == "engine" else f"engine {key}", value, None) for key, value in numbers["engine"].items()
    ]
    model_facts += [(key, value, f"decoding.{key}") for key, value in numbers["decoding"].items()]
    model_facts.append(("seed policy", numbers["seed_policy"], None))
    tokens = [(f"{key} tokens", value, f"tokens.{key}") for key, value in numbers["tokens"].items()]
    tokens += [(key.replace("_", " "), value, f"throughput.{key}") for key, value in numbers["throughput"].items()]
    reasons = table(
        ("decision", "reason", "rows"),
        (
            [cell(decision), cell(reason), cell(count, f"reasons_by_decision.{decision}.{reason}")]
            for decision, by_reason in numbers["reasons_by_decision"].items()
            for reason, count in by_reason.items()
        ),
    )
    if numbers["reasons"]:
        reasons += table(
            ("reason (all rows)", "rows"),
            ([cell(reason), cell(count, f"reasons.{reason}")] for reason, count in numbers["reasons"].items()),
        )
    by_task = table(
        ("task", "rows", "decisions", "reasons"),
        (
            [
                cell(task),
                cell(values.get("rows"), f"by_task.{task}.rows"),
                cell(", ".join(f"{key}: {value:,}" for key, value in (values.get("decisions") or {}).items())),
                cell(", ".join(f"{key}: {value:,}" for key, value in (values.get("reasons") or {}).items())),
            ]
            for task, values in numbers["by_task"].items()
        ),
    )
    template = numbers["template"]
    template_html = facts([("name", template.get("name"), None), ("about", template.get("description"), None)])
    parts = ("system", "user", "assistant_prefix")
    texts = "".join(f"<p>{escape(part)}</p>{code(template[part])}" for part in parts if template.get(part))
    if texts:
        template_html += f"<details><summary>template text</summary>{texts}</details>"
    conversations = numbers.get("conversations")
    turns_html = ""
    if conversations:
        assistant = conversations["assistant_turns"]
        turns_html = section(
            "Conversations and turns",
            facts(
                [
                    ("conversations in", conversations["in"], "conversations.in"),
                    ("conversations out", conversations["out"], "conversations.out"),
                    ("turns in", conversations["turns_in"], "conversations.turns_in"),
                    ("turns out", conversations["turns_out"], "conversations.turns_out"),
                    ("turns per conversation", conversations["turns_per_conversation"], None),
                    ("assistant turns", assistant["total"], "conversations.assistant_turns.total"),
                ]
            )
            + table(
                ("assistant turn decision · reason", "turns"),
                ([cell(reason), cell(count)] for reason, count in assistant["reasons"].items()),
            ),
        )
    return "".join(
        [
            section("Rows and decisions", overview),
            turns_html,
            section("Reasons", reasons),
            section("By task", by_task),
            section("Teacher and decoding", facts(model_facts)),
            section("Tokens and throughput", facts(tokens)),
            section("Template", template_html),
        ]
    )


def _charts(columns: dict[str, list], source_words: list[int], teacher_words: list[int]) -> list[str]:
    pairs = Counter(zip(columns["decision"], columns["reason"]))
    order = {name: index for index, name in enumerate(DECISION_ORDER)}
    bars = [
        (f"{decision} · {reason}", count, charts.color_for(decision or "", order.get(decision or "", 3)))
        for (decision, reason), count in sorted(pairs.items(), key=lambda item: (order.get(item[0][0], 9), -item[1]))
    ]
    generated = [index for index, text in enumerate(columns["teacher_response"]) if text is not None]
    by_decision: dict[str, list[int]] = {}
    for index in generated:
        by_decision.setdefault(columns["decision"][index] or "", []).append(teacher_words[index])
    by_decision = {name: by_decision[name] for name in sorted(by_decision, key=lambda name: order.get(name, 9))}
    return [
        charts.horizontal_bars("Rows by decision and reason", bars),
        charts.histograms(
            "Response length: source vs teacher",
            {
                "source response": [source_words[i] for i in generated],
                "teacher rewrite": [teacher_words[i] for i in generated],
            },
        ),
        charts.box_plots("Teacher rewrite length by decision", by_decision),
    ]


def distill_view(output: artifacts.StageOutput, options: ViewOptions) -> View:
    """The page of a distill run or a published config."""
    folder, kind, config_name = output.folder, output.kind, options.config_name
    max_chars, budget_chars = options.max_chars, options.budget_chars
    if kind == artifacts.DISTILL_RUN:
        stats = json.loads((folder / artifacts.STATS_FILE).read_text())
    else:
        stats = read_stage_dataset(folder, "train", config_name).provenance
    columns, where = _rows(folder, kind, config_name)
    numbers = summary_numbers(stats)
    source_words = [word_count(text) for text in columns["response"]]
    teacher_words = [word_count(text) for text in columns["teacher_response"]]
    texts, limit, cut = cut_texts({name: columns[name] for name in TEXT_COLUMNS}, max_chars, budget_chars)
    rows = {
        "n": len(columns["id"]),
        "columns": {
            "id": [str(value) for value in columns["id"]],
            "task": categorical(columns["task"]),
            "decision": categorical(columns["decision"]),
            "reason": categorical(columns["reason"]),
            "finish_reason": categorical(columns["finish_reason"]),
            **texts,
            "prompt_tokens": columns["prompt_tokens"],
            "teacher_tokens": columns["teacher_tokens"],
            "source_words": source_words,
            "teacher_words": teacher_words,
        },
        "list": ["id", "task", "decision", "reason", "instruction"],
        "filters": ["decision", "reason", "task"],
        "search": ["id", "context", "instruction", "input", "response", "teacher_response"],
        "detail": "distill",
        "text_limit": limit,
        "texts_cut": cut,
        "full_rows": where,
    }
    title = f"Distill: {numbers['source'] or folder.name}"
    if config_name:
        title += f" (config {config_name})"
    return View(
        "distill",
        title,
        numbers,
        _summary_html(numbers),
        _charts(columns, source_words, teacher_words),
        rows,
    )


DISTILL_RUN_VIEW = InspectView("a distill run", f"{artifacts.STATS_FILE} or rows", distill_view)
PUBLISHED_VIEW = InspectView("a published folder", f"{artifacts.PROVENANCE_FILE} or rows", distill_view)
