"""The rows the select stage chooses from: the kept rows of any stage output holding a dataset, or any source."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from sdd_data import artifacts
from sdd_data.data.records import user_prompt
from sdd_data.data.sources import SourceSpec, load_rows
from sdd_data.data.stage_data import StageDataset, read_stage_dataset
from sdd_data.errors import SddError


@dataclass
class SelectionSource:
    """The input table (written back with the selection columns), one dict per row for scoring, provenance."""

    table: pa.Table
    rows: list[dict]
    """Per row: id, instruction, input and response (the final assistant turn)."""
    provenance: dict
    set_aside: list[dict] = field(default_factory=list)
    """Rows not offered to selection: their id and why (an invalid field, or dropped by distill)."""

    @property
    def user_turns(self) -> list[str]:
        """Each row's user turn: the instruction, and the input after a newline when there is one."""
        return [user_prompt(row["instruction"], row["input"]) for row in self.rows]


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
        rows.append(
            {
                "id": record["id"],
                "instruction": record["instruction"],
                "input": record["input"] or "",
                "response": response,
            }
        )
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
            {"id": row["id"], "instruction": row["instruction"], "input": row["input"], "response": row["response"]}
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
        source = SelectionSource(pa.Table.from_pylist(loaded.rows), rows, provenance, set_aside)
    if not source.rows:
        raise SddError(f"{spec.data} has no rows to select from")
    return source
