"""The rows the select stage chooses from: the kept rows of any stage output holding a dataset, or any source."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from sdd_data import artifacts
from sdd_data.data.conversations import chat_messages
from sdd_data.data.records import sft_messages, user_prompt
from sdd_data.data.sources import SourceSpec, load_rows
from sdd_data.data.stage_data import StageDataset, read_stage_dataset
from sdd_data.errors import SddError


@dataclass
class SelectionSource:
    """The input table (written back with the selection columns), one dict per row for scoring, provenance."""

    table: pa.Table
    rows: list[dict]
    """Per row: id, instruction, input and response (the final assistant turn); a conversation of more than one
    exchange also has its `messages`."""
    provenance: dict
    set_aside: list[dict] = field(default_factory=list)
    """Rows not offered to selection: their id and why (an invalid field, or dropped by distill)."""

    @property
    def user_turns(self) -> list[str]:
        """Each row's user turns: the instruction, and the input after a newline when there is one; every user
        turn of a conversation, a blank line apart (what the embedding reads)."""
        return [
            "\n\n".join(turn["content"] for turn in row["messages"] if turn["role"] == "user")
            if "messages" in row
            else user_prompt(row["instruction"], row["input"])
            for row in self.rows
        ]

    @property
    def texts(self) -> list[str]:
        """Each row's whole text (user turns and responses), for the concept graph."""
        return [
            "\n".join(turn["content"] for turn in row["messages"] if turn["role"] != "system")
            if "messages" in row
            else f"{user_prompt(row['instruction'], row['input'])}\n{row['response']}"
            for row in self.rows
        ]

    @property
    def turn_counts(self) -> dict:
        """Conversations of more than one exchange among the rows, and the assistant turns of all rows."""
        return self.count_turns(self.rows)

    @staticmethod
    def count_turns(rows: list[dict]) -> dict:
        """Conversations of more than one exchange among `rows`, and the assistant turns of them all."""
        assistant = [sum(t["role"] == "assistant" for t in row["messages"]) if "messages" in row else 1 for row in rows]
        return {"conversations": sum("messages" in row for row in rows), "assistant_turns": sum(assistant)}


def _scoring_row(identifier: str, instruction: str, input_text: str, response: str, messages: list | None) -> dict:
    """What selection reads of a row: a conversation of more than one exchange (or with a system prompt or tool
    turns) keeps its turns."""
    row = {"id": identifier, "instruction": instruction, "input": input_text or "", "response": response}
    if messages is not None and (len(messages) > 2 or any(turn["role"] != "user" for turn in messages[:1])):
        row["messages"] = chat_messages(messages)
    return row


def _assistant_text(messages) -> str | None:
    for message in reversed(messages or []):
        if message and message.get("role") == "assistant":
            return message.get("content")
    return None


def distill_stats_of(dataset: StageDataset) -> dict | None:
    """The distill run's stats behind a stage output (kept through selections), or None for other data."""
    if dataset.kind == artifacts.DISTILL_RUN:
        return dataset.provenance
    if dataset.kind == artifacts.SELECT_OUTPUT:
        return (dataset.provenance.get("source") or {}).get("distill_stats")
    return None


def _from_stage_output(folder: Path, limit: int | None) -> SelectionSource:
    dataset = read_stage_dataset(folder)
    table = dataset.table
    if "messages" not in table.column_names:
        raise SddError(f"{folder}: the rows have no `messages` column, so there are no responses to score")
    set_aside = []
    if "decision" in table.column_names:
        dropped = pc.equal(table.column("decision"), "dropped")
        reasons = table.column("reason").to_pylist() if "reason" in table.column_names else None
        for index in pc.indices_nonzero(dropped).to_pylist():
            reason = f"dropped_by_distill:{reasons[index]}" if reasons and reasons[index] else "dropped_by_distill"
            set_aside.append({"id": table.column("id")[index].as_py(), "reason": reason})
        table = table.filter(pc.invert(dropped))
    if limit is not None:
        table = table.slice(0, limit)
    rows = []
    for record in table.select(["id", "instruction", "input", "messages"]).to_pylist():
        response = _assistant_text(record["messages"])
        if not isinstance(response, str) or not response.strip():
            raise SddError(f"{folder}: row {record['id']} has no assistant response in `messages`")
        rows.append(_scoring_row(record["id"], record["instruction"], record["input"], response, record["messages"]))
    stats = distill_stats_of(dataset) or {}
    provenance = {
        "kind": dataset.kind,
        "name": folder.name,
        "config_name": dataset.config_name,
        "fingerprint": (stats.get("source") or {}).get("fingerprint"),
        "teacher": stats.get("teacher"),
        "rows_set_aside": len(set_aside),
        "distill_stats": stats or None,
    }
    return SelectionSource(table, rows, provenance, set_aside)


def _stored_rows(rows: list[dict]) -> list[dict]:
    """Source rows as the selection writes them: a conversation as its whole `messages`, single-turn rows as
    they are (with SFT-ready messages too when the source also has conversations)."""
    if all(row["conversation"] is None for row in rows):
        return [{key: value for key, value in row.items() if key != "conversation"} for row in rows]
    return [
        {
            **{key: value for key, value in row.items() if key != "conversation"},
            "messages": row["conversation"] or sft_messages(row, row["response"]),
        }
        for row in rows
    ]


def load_selection_source(spec: SourceSpec) -> SelectionSource:
    """Rows to select from: the kept rows of a distill run folder (`messages`), or a source's canonical rows."""
    if spec.limit is not None and spec.limit <= 0:
        raise SddError(f"limit must be positive, got {spec.limit}")
    folder = Path(spec.data).expanduser()
    output = artifacts.detect(folder)
    if output is not None and output.kind in artifacts.DATASET_KINDS:
        source = _from_stage_output(folder, spec.limit)
    else:
        try:
            loaded = load_rows(spec)
        except SddError as error:
            if "no column for 'response'" in str(error):
                raise SddError(f"selection scores responses, but {spec.data} has none: {error}") from None
            raise
        rows = [
            _scoring_row(row["id"], row["instruction"], row["input"], row["response"], row["conversation"])
            for row in loaded.rows
        ]
        provenance = {
            "kind": "source",
            "name": loaded.name,
            "fingerprint": loaded.fingerprint,
            "preset": loaded.preset,
            "rows_set_aside": len(loaded.invalid),
        }
        set_aside = [{"id": row["id"], "reason": row["reason"]} for row in loaded.invalid]
        source = SelectionSource(pa.Table.from_pylist(_stored_rows(loaded.rows)), rows, provenance, set_aside)
    if not source.rows:
        raise SddError(f"{spec.data} has no rows to select from")
    return source
