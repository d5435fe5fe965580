"""Stage outputs for the inspect tests, written directly: a distill run of any size, a select output, an eval folder.

The distill run has the files and columns the distill stage writes (run.json, stats.json with the same keys,
distilled.parquet, dropped.parquet, data/), so inspect reads it as a finished run; its stats are counted from
its rows. The select output comes from the select stage's own writer on a hand-made selection result.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

CHANGED_ROW = {
    "id": "cat-mat",
    "task": "free",
    "instruction": "Where did the cat sit?",
    "response": "The cat sat on the mat.",
    "teacher_response": "The cat sat on the rug.",
    "decision": "rewrite",
    "reason": "ok",
}
"""A rewrite that changes one word (mat -> rug): the diff marks exactly that word."""

DECISIONS = [("rewrite", "ok"), ("original", "answer_mismatch"), ("original", "truncated"), ("dropped", "looping")]
WORDS = "the a model answer step number first then so we add take result total each one two three".split()


def synthetic_rows(count: int, seed: int = 0) -> list[dict]:
    """`count` rows with varied lengths, decisions and tasks; the first one is CHANGED_ROW."""
    generator = np.random.default_rng(seed)
    rows = [dict(CHANGED_ROW)]
    for index in range(1, count):
        decision, reason = DECISIONS[index % len(DECISIONS)]
        source = " ".join(generator.choice(WORDS, size=int(generator.integers(5, 120))))
        teacher = " ".join(generator.choice(WORDS, size=int(generator.integers(5, 160))))
        rows.append(
            {
                "id": f"row-{index:06d}",
                "task": ("math", "free", "mc", "code")[index % 4],
                "instruction": f"Question {index}: " + " ".join(generator.choice(WORDS, size=12)),
                "response": source,
                "teacher_response": teacher,
                "decision": decision,
                "reason": reason,
            }
        )
    return rows


def _full_row(row: dict) -> dict:
    return {
        "id": row["id"],
        "source": "synthetic.jsonl",
        "instruction": row["instruction"],
        "input": "",
        "response": row["response"],
        "reference_answer": row.get("reference_answer"),
        "task": row["task"],
        "meta": "",
        "teacher_response": row["teacher_response"],
        "decision": row["decision"],
        "reason": row["reason"],
        "extracted_answer": row.get("extracted_answer"),
        "finish_reason": "length" if row["reason"] == "truncated" else "stop",
        "prompt_tokens": 40 + len(row["instruction"].split()),
        "teacher_tokens": len(row["teacher_response"].split()),
    }


def write_distill_run(folder: Path, rows: list[dict]) -> Path:
    """A finished distill run holding `rows` (dropped ones in dropped.parquet), with stats counted from them."""
    folder.mkdir(parents=True)
    full = [_full_row(row) for row in rows]
    kept = [row for row in full if row["decision"] != "dropped"]
    dropped = [row for row in full if row["decision"] == "dropped"]
    schema = pa.Table.from_pylist(full).schema
    pq.write_table(pa.Table.from_pylist(kept, schema=schema), folder / "distilled.parquet")
    pq.write_table(pa.Table.from_pylist(dropped, schema=schema), folder / "dropped.parquet")
    (folder / "data").mkdir()
    (folder / "run.json").write_text("{}")
    by_decision: dict[str, Counter] = {}
    for row in full:
        if row["decision"] != "rewrite":
            by_decision.setdefault(row["decision"], Counter())[row["reason"]] += 1
    by_task: dict[str, dict] = {}
    for row in full:
        task = by_task.setdefault(row["task"], {"rows": 0, "decisions": Counter(), "reasons": Counter()})
        task["rows"] += 1
        task["decisions"][row["decision"]] += 1
        task["reasons"][row["reason"]] += 1
    stats = {
        "rows_in": len(full),
        "rows_out": len(kept),
        "decisions": dict(Counter(row["decision"] for row in full)),
        "reasons": dict(Counter(row["reason"] for row in full)),
        "reasons_by_decision": {name: dict(counts) for name, counts in by_decision.items()},
        "by_task": {
            name: {"rows": task["rows"], "decisions": dict(task["decisions"]), "reasons": dict(task["reasons"])}
            for name, task in by_task.items()
        },
        "tokens": {"prompt": sum(row["prompt_tokens"] for row in full), "completion": 12345},
        "throughput": {"generated_rows": len(full), "seconds": 12.5, "rows_per_second": len(full) / 12.5},
        "teacher": {
            "name": "SmolLM2-135M-Instruct",
            "path": "/models/smollm2",
            "revision": "v1",
            "quantization": "dequantized to float32 from GGUF Q4_1",
        },
        "engine": {"engine": "transformers", "dtype": "float32"},
        "template": {"name": "chat", "system": "Rewrite it.", "user": "{instruction}\n{reference}", "chat": True},
        "seed_policy": "greedy decoding",
        "source": {"name": "synthetic.jsonl"},
        "config": {"max_new_tokens": 256, "temperature": 0.0, "top_p": 1.0, "top_k": 0, "seed": 0},
    }
    (folder / "stats.json").write_text(json.dumps(stats))
    return folder


def write_select_output(distill_run: Path, output: Path) -> Path:
    """A select output of a distill run written by the select stage's writer: one row selected, one near
    duplicate of it, one concept conflict, the rest budget-exhausted; the run's dropped rows set aside."""
    from sdd_data.data.sources import SourceSpec
    from sdd_data.select.selection import SelectionResult
    from sdd_data.select.stage import _outcome_table, _selected_table, _write
    from sdd_data.select.stage_inputs import load_selection_source

    source = load_selection_source(SourceSpec(data=str(distill_run)))
    # a row the distill run dropped, set aside before selection as a run with --on-failure drop would have it
    source.set_aside.append({"id": "empty", "reason": "dropped_by_distill:invalid_row:instruction_empty"})
    count = len(source.rows)
    reasons = ["selected", "near_duplicate_of:0", "concept_conflict:apple|pear"] + ["budget_exhausted"] * (count - 3)
    clusters = [
        {"cluster": 0, "size": count - 1, "mean_degradation": 0.25, "budget": 1, "selected": 1},
        {"cluster": 1, "size": 1, "mean_degradation": 0.1, "budget": 0, "selected": 0},
    ]
    for row in clusters:
        row.update(near_duplicates=int(row["cluster"] == 0), concept_conflicts=int(row["cluster"] == 0))
    result = SelectionResult(
        method="paser",
        budget=1,
        selected=np.array([reason == "selected" for reason in reasons]),
        cluster=np.array([0] * (count - 1) + [1]),
        degradation=np.linspace(0.5, 0.1, count),
        ies=np.linspace(0.05, 0.01, count),
        rank=np.array([*range(1, count), 1]),
        reason=reasons,
        report={"method": "paser", "rows": count, "budget": 1, "selected": 1, "n_clusters": 2, "clusters": clusters},
    )
    scored = [SimpleNamespace(prompt_tokens=20, response_tokens=10, truncated=False)] * count
    outcome = _outcome_table(source, result, scored)
    provenance = {
        "stage": "select",
        "config": {"data": str(distill_run)},
        "counts": {"rows": count, "selected": 1, "set_aside": len(source.set_aside)},
        "original_model": {"name": "original"},
        "pruned_model": {"name": "pruned"},
    }
    _write(output, _selected_table(source, outcome, result), outcome, result, provenance, overwrite=False)
    return output


def write_eval_output(folder: Path) -> Path:
    """An eval folder: two tasks (one lower-is-better), three models, speculative acceptance of one draft."""
    from sdd_data.evaluate.report import build_report
    from sdd_data.evaluate.task_base import TaskResult

    scores = {"original": (0.60, 0.40, 1.2), "pruned": (0.45, 0.30, 2.0), "recovered": (0.57, 0.36, 1.4)}
    results = {
        label: {
            name: TaskResult(label, metric, values[index], 100, higher_is_better=better)
            for name, values in scores.items()
        }
        for index, (label, metric, better) in enumerate(
            [("mc:arc_easy", "acc_norm", True), ("gsm8k:test", "exact_match", True), ("nll:heldout", "nll", False)]
        )
    }
    speculative = {
        "recovered": {
            "target": "original",
            "draft_tokens": 5,
            "engine": "transformers",
            "prompts": 8,
            "proposed": 400,
            "accepted": 250,
            "steps": 80,
            "generated": 330,
            "acceptance_rate": 0.625,
            "mean_accepted_length": 4.125,
        }
    }
    report = build_report({name: {"model": name} for name in scores}, "original", results, speculative)
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(json.dumps(report))
    return folder
