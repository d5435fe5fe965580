"""Where a distill run's pending shards are generated: in this process, in one process per vLLM replica, or on Ray.

An executor takes the shards still to do and writes each one into the run folder as soon as it is done;
it reports what it generated. The stage around it (loading rows, resuming, the final outputs and stats)
is the same for every executor, and so is the table of every shard (`shards.distill_shards`).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sdd_data.distill.config import DistillConfig
from sdd_data.distill.execution import ExecutionReport, PendingShards, progress_bar
from sdd_data.distill.run_dir import RunDir
from sdd_data.distill.shards import distill_shards
from sdd_data.distill.templates import Template
from sdd_data.engines import load_engine
from sdd_data.registry import Registry

Executor = Callable[[RunDir, PendingShards, str, Template, DistillConfig, bool], ExecutionReport]

EXECUTORS: Registry[Executor] = Registry(
    "executor",
    {
        "local": "sdd_data.distill.executors:run_here",
        "ray": "sdd_data.distill.ray_executor:run_on_ray",
    },
)
"""Executor name -> function; `local` runs one process per replica when data_parallel_size > 1."""


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
