"""Where a distill run's pending shards are generated: in this process, in one process per vLLM replica, or on Ray.

An executor takes the shards still to do and writes each one into the run folder as soon as it is done;
it reports what it generated. The stage around it (loading rows, resuming, the final outputs and stats)
is the same for every executor, and so is the table of every shard (`shards.distill_shards`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc
from tqdm.auto import tqdm

from sdd_data.distill.config import DistillConfig
from sdd_data.distill.run_dir import RunDir
from sdd_data.distill.shards import distill_shards
from sdd_data.distill.templates import Template
from sdd_data.distill.turns import count_units
from sdd_data.engines import load_engine
from sdd_data.registry import Registry

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
    """The teacher tokens a shard's rows took."""
    return pc.sum(table.column("teacher_tokens")).as_py() or 0


Executor = Callable[[RunDir, PendingShards, str, Template, DistillConfig, bool], ExecutionReport]

EXECUTORS: Registry[Executor] = Registry(
    "executor",
    {
        "local": "sdd_data.distill.executors:run_here",
        "ray": "sdd_data.distill.ray_executor:run_on_ray",
    },
)
"""Executor name -> function; `local` runs one process per replica when data_parallel_size > 1."""


def progress_bar(pending: PendingShards, show_progress: bool) -> tqdm:
    """The one progress bar of a run, counted in teacher requests: rows, or the assistant turns of conversations."""
    rows = [row for _, shard in pending for row in shard]
    unit = "turn" if any(row.get("conversation") for row in rows) else "row"
    return tqdm(total=sum(map(count_units, rows)), unit=unit, desc="distill", disable=not show_progress)


def run_here(
    run: RunDir, pending: PendingShards, teacher_path: str, template: Template, config: DistillConfig, show: bool
) -> ExecutionReport:
    """Generate the pending shards with one engine in this process (or one process per vLLM replica)."""
    if config.engine_options.data_parallel_size > 1:
        from sdd_data.distill.data_parallel import run_replicas

        return run_replicas(run, pending, teacher_path, template, config, show)
    engine = load_engine(config.engine, teacher_path, config.engine_options)
    report = ExecutionReport(engine=engine.describe())
    started = time.perf_counter()
    with progress_bar(pending, show) as bar:
        for index, table in distill_shards(pending, engine, template, config, bar.update):
            run.write_shard(index, table)
            report.add_shard(table)
    engine.close()
    report.seconds = time.perf_counter() - started
    return report
