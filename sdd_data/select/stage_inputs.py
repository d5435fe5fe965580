"""The rows the select stage chooses from: a distill run's kept rows, or any source `sources` reads."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..errors import SddError
from ..records import user_prompt
from ..sources import SourceSpec, load_rows


@dataclass
class SelectionSource:
    """The input table (written back with the selection columns), one dict per row for scoring, provenance."""

    table: pa.Table
    rows: list[dict]
    """Per row: id, instruction, input and response (the final assistant turn)."""
    provenance: dict

    @property
    def user_turns(self) -> list[str]:
        """Each row's user turn: the instruction, and the input after a newline when there is one."""
        return [user_prompt(row["instruction"], row["input"]) for row in self.rows]


def is_distill_run(path: Path) -> bool:
    """Whether a folder is the output of `sdd-data distill`."""
    return path.is_dir() and (path / "distilled.parquet").is_file() and (path / "stats.json").is_file()


def _assistant_text(messages) -> str | None:
    for message in reversed(messages or []):
        if message and message.get("role") == "assistant":
            return message.get("content")
    return None


def _from_distill_run(folder: Path, limit: int | None) -> SelectionSource:
    table = pq.read_table(folder / "distilled.parquet")
    if "messages" not in table.column_names:
        raise SddError(f"{folder}: the distilled rows have no `messages` column, so there are no responses to score")
    table = table.filter(pc.not_equal(table.column("decision"), "dropped"))
    if limit is not None:
        table = table.slice(0, limit)
    rows = []
    for record in table.select(["id", "instruction", "input", "messages"]).to_pylist():
        response = _assistant_text(record["messages"])
        if not isinstance(response, str) or not response.strip():
            raise SddError(f"{folder}: row {record['id']} has no assistant response in `messages`")
        rows.append({"id": record["id"], "instruction": record["instruction"], "input": record["input"] or "",
                     "response": response})
    stats = json.loads((folder / "stats.json").read_text())
    provenance = {"kind": "distill_run", "name": folder.name, "fingerprint": stats.get("source", {}).get("fingerprint"),
                  "teacher": stats.get("teacher"), "rows_set_aside": 0}
    return SelectionSource(table, rows, provenance)


def load_selection_source(spec: SourceSpec) -> SelectionSource:
    """Rows to select from: the kept rows of a distill run folder (`messages`), or a source's canonical rows."""
    if spec.limit is not None and spec.limit <= 0:
        raise SddError(f"limit must be positive, got {spec.limit}")
    folder = Path(spec.data).expanduser()
    if is_distill_run(folder):
        source = _from_distill_run(folder, spec.limit)
    else:
        try:
            loaded = load_rows(spec)
        except SddError as error:
            if "no column for 'response'" in str(error):
                raise SddError(f"selection scores responses, but {spec.data} has none: {error}") from None
            raise
        rows = [{"id": row["id"], "instruction": row["instruction"], "input": row["input"],
                 "response": row["response"]} for row in loaded.rows]
        provenance = {"kind": "source", "name": loaded.name, "fingerprint": loaded.fingerprint,
                      "preset": loaded.preset, "rows_set_aside": len(loaded.invalid)}
        source = SelectionSource(pa.Table.from_pylist(loaded.rows), rows, provenance)
    if not source.rows:
        raise SddError(f"{spec.data} has no rows to select from")
    return source
