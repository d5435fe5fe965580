"""What a distill run counted, and the summary table printed at its end."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pyarrow as pa

from sdd_data.errors import SddError

SEED_POLICY = (
    "greedy decoding; per-row seed = sha256('<seed>:<row id>') used when sampling; attempt k > 1 of --attempts "
    "samples with sha256('<seed>:<row id>#attempt<k>')"
)
COPY_SIMILARITY = 90.0
"""A kept rewrite this similar to its source response (rapidfuzz `fuzz.ratio`, 0-100) counts as a copy."""


def _counts(values: list) -> dict:
    return dict(Counter(values).most_common())


def distill_stats(
    *,
    table: pa.Table,
    invalid: pa.Table,
    config: dict,
    template: dict,
    teacher,
    engine: dict,
    source,
    work: dict,
    version: str,
) -> dict:
    """Counts by decision and reason (overall and per task), tokens, throughput and full provenance.

    `work` is what this invocation generated: generated_rows, generated_tokens, resumed_shards, seconds.
    """
    decisions = table.column("decision").to_pylist() + invalid.column("decision").to_pylist()
    reasons = table.column("reason").to_pylist() + invalid.column("reason").to_pylist()
    tasks = table.column("task").to_pylist()
    per_task: dict[str, dict] = {}
    for task, decision, reason in zip(tasks, table.column("decision").to_pylist(), table.column("reason").to_pylist()):
        entry = per_task.setdefault(task, {"rows": 0, "decisions": Counter(), "reasons": Counter()})
        entry["rows"] += 1
        entry["decisions"][decision] += 1
        entry["reasons"][reason] += 1
    completion_tokens = sum(table.column("teacher_tokens").to_pylist())
    prompt_tokens = sum(table.column("prompt_tokens").to_pylist())
    seconds = work["seconds"]
    stats = {
        "rows_in": len(table) + len(invalid),
        "rows_out": sum(1 for decision in decisions if decision != "dropped"),
        "decisions": _counts(decisions),
        "reasons": _counts(reasons),
        "reasons_by_decision": {
            decision: _counts([r for d, r in zip(decisions, reasons) if d == decision])
            for decision in ("original", "dropped")
            if decision in decisions
        },
        "by_task": {
            task: {"rows": entry["rows"], "decisions": dict(entry["decisions"]), "reasons": dict(entry["reasons"])}
            for task, entry in per_task.items()
        },
        "tokens": {"prompt": prompt_tokens, "completion": completion_tokens},
        "throughput": {
            **work,
            "seconds": round(seconds, 3),
            "rows_per_second": round(work["generated_rows"] / seconds, 3) if work["generated_rows"] else None,
            "completion_tokens_per_second": round(work["generated_tokens"] / seconds, 2)
            if work["generated_tokens"]
            else None,
        },
        "teacher": {
            "name": teacher.name,
            "path": str(teacher.path),
            "revision": teacher.revision,
            "quantization": teacher.quantization,
        },
        "engine": engine,
        "template": template,
        "seed_policy": SEED_POLICY,
        "source": {
            "name": source.name,
            "fingerprint": source.fingerprint,
            "preset": source.preset,
            "columns": source.source_columns,
        },
        "config": config,
        "sdd_data_version": version,
    }
    if source.turns_in is not None:
        stats["conversations"] = conversation_stats(table, invalid, source.turns_in)
    if config.get("attempts", 1) > 1:
        stats["attempts"] = attempt_stats(table, config["attempts"], config["retry_temperature"])
    stats["copies"] = copy_stats(table)
    return stats


def _units(table: pa.Table) -> list[dict]:
    """One record per teacher request of the table: each assistant turn of a conversation, else the row."""
    columns = ("decision", "response", "teacher_response", "attempts", "attempt_tokens", "teacher_tokens")
    turns = table.column("turns").to_pylist() if "turns" in table.column_names else [None] * len(table)
    rows = table.select([name for name in columns if name in table.column_names]).to_pylist()
    return [record for row, records in zip(rows, turns) for record in (records if records is not None else [row])]


def copy_stats(table: pa.Table, threshold: float = COPY_SIMILARITY) -> dict:
    """How many kept rewrites merely copy the source response: a rapidfuzz similarity (0-100, `fuzz.ratio`) of
    `threshold` or more. A copied rewrite is SFT data under another name."""
    from rapidfuzz import fuzz

    kept = [unit for unit in _units(table) if unit["decision"] == "rewrite" and unit["teacher_response"] is not None]
    copies = sum(
        1 for unit in kept if fuzz.ratio(unit["teacher_response"].strip(), unit["response"].strip()) >= threshold
    )
    return {
        "threshold": threshold,
        "kept_rewrites": len(kept),
        "copies": copies,
        "rate": round(copies / len(kept), 4) if kept else None,
    }


def attempt_stats(table: pa.Table, allowed: int, retry_temperature: float) -> dict:
    """The rewrite yield by attempt (`--attempts`): rewrites kept at each attempt, the share of requests holding
    a rewrite once that many attempts were allowed, and the tokens of every attempt against those kept."""
    units = _units(table)
    kept = Counter(unit["attempts"] for unit in units if unit["decision"] == "rewrite")
    running, cumulative = 0, {}
    for attempt in range(1, allowed + 1):
        running += kept.get(attempt, 0)
        cumulative[str(attempt)] = round(running / len(units), 4) if units else None
    return {
        "allowed": allowed,
        "retry_temperature": retry_temperature,
        "units": len(units),
        "kept_by_attempt": {str(attempt): kept[attempt] for attempt in sorted(kept)},
        "yield_by_attempt": cumulative,
        "rejected_after_all_attempts": sum(
            1 for unit in units if unit["decision"] != "rewrite" and unit.get("attempts") == allowed
        ),
        "tokens_all_attempts": sum(unit.get("attempt_tokens") or 0 for unit in units),
        "tokens_kept_rewrites": sum(unit["teacher_tokens"] or 0 for unit in units if unit["decision"] == "rewrite"),
    }


def _row_turns(messages, conversation) -> int:
    """Turns a stored row holds: its messages, or (dropped) its source conversation, or one exchange."""
    if messages is not None:
        return len(messages)
    if conversation is not None:
        value = json.loads(conversation)
        return len(value) if isinstance(value, list) else 0
    return 2


def turns_out(*tables: pa.Table) -> int:
    """Turns stored in distilled tables, kept and dropped rows alike."""
    total = 0
    for table in tables:
        conversations = (
            table.column("conversation").to_pylist() if "conversation" in table.column_names else [None] * len(table)
        )
        total += sum(map(_row_turns, table.column("messages").to_pylist(), conversations))
    return total


def conversation_stats(table: pa.Table, invalid: pa.Table, turns_in: int) -> dict:
    """Conversations and turns in and out, and the decision and reason of every assistant turn.

    Turns in (counted as the source was read) must equal turns out (counted in what is written)."""
    stored = turns_out(table, invalid)
    if stored != turns_in:
        raise SddError(f"{turns_in} turns went in but {stored} would be written; nothing was written")
    decisions: Counter = Counter()
    reasons: Counter = Counter()
    per_conversation = []
    for records, decision, reason, messages in zip(
        table.column("turns").to_pylist(),
        table.column("decision").to_pylist(),
        table.column("reason").to_pylist(),
        table.column("messages").to_pylist(),
    ):
        for record in records if records is not None else [{"decision": decision, "reason": reason}]:
            decisions[record["decision"]] += 1
            reasons[f"{record['decision']}:{record['reason']}"] += 1
        if messages is not None:
            per_conversation.append(len(messages))
    kept = sum(1 for decision in table.column("decision").to_pylist() if decision != "dropped")
    return {
        "in": len(table) + len(invalid),
        "out": kept,
        "turns_in": turns_in,
        "turns_out": stored,
        "turns_per_conversation": round(sum(per_conversation) / len(per_conversation), 2) if per_conversation else None,
        "assistant_turns": {
            "total": sum(decisions.values()),
            "decisions": dict(decisions.most_common()),
            "reasons": dict(reasons.most_common()),
        },
    }


def print_summary(stats: dict, output: Path | str) -> None:
    """Print the run's summary table: rows, kept rewrites, fallbacks, drops by reason, tokens/s."""
    decisions = stats["decisions"]
    throughput = stats["throughput"]
    lines = [
        ("rows in", stats["rows_in"]),
        ("rows out", stats["rows_out"]),
        ("kept rewrites", decisions.get("rewrite", 0)),
    ]
    attempts, copies = stats.get("attempts"), stats.get("copies")
    if attempts:
        lines += [(f"  at attempt {attempt}", count) for attempt, count in attempts["kept_by_attempt"].items()]
    if copies and copies["kept_rewrites"]:
        lines.append((f"  copies of the source (similarity >= {copies['threshold']:g})", copies["copies"]))
    for decision, label in (("original", "fallbacks to the original"), ("dropped", "dropped")):
        lines.append((label, decisions.get(decision, 0)))
        lines += [(f"  {reason}", count) for reason, count in stats["reasons_by_decision"].get(decision, {}).items()]
    lines.append(("teacher tokens", stats["tokens"]["completion"]))
    if attempts:
        lines.append(("  of every attempt", attempts["tokens_all_attempts"]))
    lines += [
        ("tokens/s", throughput["completion_tokens_per_second"] if throughput["completion_tokens_per_second"] else "-"),
        ("rows/s", throughput["rows_per_second"] or "-"),
    ]
    conversations = stats.get("conversations")
    if conversations:
        turns = conversations["assistant_turns"]
        lines += [
            ("conversations in / out", f"{conversations['in']} / {conversations['out']}"),
            ("turns in / out", f"{conversations['turns_in']} / {conversations['turns_out']}"),
            ("assistant turns rewritten", f"{turns['decisions'].get('rewrite', 0)} of {turns['total']}"),
        ]
    if throughput["resumed_shards"]:
        lines.append(("shards reused from an earlier run", throughput["resumed_shards"]))
    width = max(len(label) for label, _ in lines)
    print(f"\ndistilled {stats['source']['name']} with {stats['teacher']['name']} -> {output}")
    if stats["teacher"].get("quantization"):
        print(f"  teacher weights: {stats['teacher']['quantization']}")
    for label, value in lines:
        print(f"  {label:<{width}}  {value:>10}")
