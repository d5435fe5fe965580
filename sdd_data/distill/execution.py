"""What every executor shares: the shards still to do, the report of what was generated, the one progress bar."""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc
from tqdm.auto import tqdm

from sdd_data.distill.turns import count_units

PendingShards = list[tuple[int, list[dict]]]
"""Shards still to generate: (shard index, its rows)."""


@dataclass
class ExecutionReport:
    """What an executor generated: the engine that ran (for provenance), rows, tokens and seconds."""

    engine: dict = field(default_factory=dict)
    generated_rows: int = 0
    generated_tokens: int = 0
    seconds: float = 0.0

    def add_shard(self, table: pa.Table) -> None:
        """Count one written shard."""
        self.add(len(table), shard_tokens(table))

    def add(self, rows: int, tokens: int) -> None:
        """Count rows and teacher tokens generated."""
        self.generated_rows += rows
        self.generated_tokens += tokens


def shard_tokens(table: pa.Table) -> int:
    """The teacher tokens a shard's rows took: those of every attempt where rejected rewrites were retried."""
    column = "attempt_tokens" if "attempt_tokens" in table.column_names else "teacher_tokens"
    counted = pc.sum(table.column(column)).as_py()
    return counted if counted is not None else pc.sum(table.column("teacher_tokens")).as_py() or 0


def progress_bar(pending: PendingShards, show_progress: bool) -> tqdm:
    """The one progress bar of a run, counted in teacher requests: rows, or the assistant turns of conversations."""
    rows = [row for _, shard in pending for row in shard]
    unit = "turn" if any(row.get("conversation") for row in rows) else "row"
    return tqdm(total=sum(map(count_units, rows)), unit=unit, desc="distill", disable=not show_progress)
