"""The distill stage: the teacher rewrites every response, the consistency filter keeps or rejects it.

Rows are cut into fixed shards; each shard is generated, judged and written atomically, so a rerun
of the same command after a crash finishes the job with no row lost or duplicated.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from sdd_data import __version__
from sdd_data.artifacts import DATA_DIR, DISTILLED_PARQUET, DROPPED_PARQUET, STATS_FILE
from sdd_data.config import config_hash, config_to_flat_dict
from sdd_data.data.conversations import MESSAGE_KEYS
from sdd_data.data.decontaminate import build_index, row_text, split_paths
from sdd_data.data.sources import LoadedSource, load_rows
from sdd_data.distill.config import DistillConfig
from sdd_data.distill.execution import ExecutionReport
from sdd_data.distill.executors import EXECUTORS
from sdd_data.distill.reasoning import check_mode as check_reasoning_mode
from sdd_data.distill.remote_output import RemoteOutput, is_url
from sdd_data.distill.run_dir import RunDir
from sdd_data.distill.shards import DISTILLED_SCHEMA, MESSAGE, OPTIONAL_COLUMNS
from sdd_data.distill.stats import distill_stats, print_summary
from sdd_data.distill.templates import AUTO, get_template
from sdd_data.distill.turns import TURN_CONTEXTS
from sdd_data.engines import ENGINES, Capability, engine_traits, engines_that_can
from sdd_data.errors import SddError
from sdd_data.models.resolve import resolve_model
from sdd_data.output_folder import check_output_place, write_atomically, write_json

NEWER_OPTIONS = {
    "truncate_long_prompts": False,
    "turn_context": "original",
    "reasoning": "separate",
    "chat_template_kwargs": {},
}
"""Options added after run folders existed, with their defaults: left at the default they are no part of a
run's identity, so a run begun by an earlier version still resumes."""
_UNSET = object()


@dataclass
class DistillResult:
    """Where the results are and what the run counted."""

    output: Path
    stats: dict


def check_options(config: DistillConfig) -> None:
    """Refuse options that cannot run, before anything is read or loaded (`sdd-data run` calls it for every step)."""
    if config.engine not in ENGINES:
        raise SddError(f"unknown engine {config.engine!r}; known: {', '.join(ENGINES.names())}")
    if config.shard_size <= 0:
        raise SddError(f"shard_size must be positive, got {config.shard_size}")
    if config.decoding.max_new_tokens <= 0:
        raise SddError(f"max_new_tokens must be positive, got {config.decoding.max_new_tokens}")
    if config.attempts < 1:
        raise SddError(f"attempts must be at least 1, got {config.attempts}")
    if config.attempts > 1 and config.retry_temperature <= 0:
        raise SddError(
            f"retry_temperature must be above 0 with attempts {config.attempts}: a greedy retry repeats the rejected "
            "rewrite"
        )
    if config.executor not in EXECUTORS:
        raise SddError(f"unknown executor {config.executor!r}; known: {', '.join(EXECUTORS.names())}")
    replicas = config.engine_options.data_parallel_size
    if replicas < 1:
        raise SddError(f"data_parallel_size must be at least 1, got {replicas}")
    if replicas > 1 and (not engine_traits(config.engine).can(Capability.DATA_PARALLEL) or config.executor != "local"):
        engines = " or ".join(engines_that_can(Capability.DATA_PARALLEL))
        raise SddError(
            f"--data-parallel-size {replicas} runs {engines} replicas on this machine; with --engine {config.engine}"
            f" or on Ray use --executor ray --replicas {replicas}"
        )
    if not is_url(config.output):
        check_output_place(Path(config.output))
    if config.template != AUTO:
        get_template(config.template, set())
    if config.turn_context not in TURN_CONTEXTS:
        raise SddError(f"turn_context must be one of {', '.join(TURN_CONTEXTS)}, not {config.turn_context!r}")
    check_reasoning_mode(config.reasoning)
    options = config.ray
    if options.replicas < 1 or options.shards_per_call < 1 or options.cpus_per_replica <= 0:
        raise SddError(
            "replicas and shards_per_call must be at least 1 and cpus_per_replica positive, got "
            f"{options.replicas}, {options.shards_per_call} and {options.cpus_per_replica}"
        )


def _invalid_table(loaded: LoadedSource) -> pa.Table:
    rows = [{**row, "decision": "dropped"} for row in loaded.invalid]
    return pa.Table.from_pylist(rows, schema=DISTILLED_SCHEMA)


def set_aside_contaminated(loaded: LoadedSource, config: DistillConfig) -> LoadedSource:
    """The source without the rows that share an n-gram with an evaluation item; those join the unusable rows."""
    paths = split_paths(config.decontaminate)
    if not paths:
        return loaded
    index = build_index(paths, config.decontamination_ngram)
    clean, contaminated = [], []
    for row in loaded.rows:
        (contaminated if index.contaminated(row_text(row)) else clean).append(row)
    if not clean:
        raise SddError(f"every row of {loaded.name} shares a {index.ngram}-gram with {', '.join(index.sources)}")
    invalid = [*loaded.invalid, *({**row, "reason": "contaminated"} for row in contaminated)]
    return replace(loaded, rows=clean, invalid=invalid)


def distill(config: DistillConfig, show_progress: bool = True) -> DistillResult:
    """Run the distill stage (resuming an interrupted run in the same output folder) and return its stats."""
    check_options(config)
    loaded = set_aside_contaminated(load_rows(config.source, strict=config.strict), config)
    template = get_template(config.template, {row["task"] for row in loaded.rows})
    if config.chat_template_kwargs:
        template = replace(template, chat_template_kwargs=dict(config.chat_template_kwargs))
    teacher = resolve_model(config.teacher, revision=config.revision)
    flat_config = config_to_flat_dict(config)
    not_identity = config.output_neutral_options() | {"output", "overwrite"}
    identity = {
        "config": {
            key: value
            for key, value in flat_config.items()
            if key not in not_identity and NEWER_OPTIONS.get(key, _UNSET) != value
        },
        "source_fingerprint": loaded.fingerprint,
        "template": template.to_dict(),
        "rows": len(loaded.rows),
    }
    remote = RemoteOutput(config.output) if is_url(config.output) else None
    run = RunDir(remote.mirror, after_shard=remote.put_shard) if remote else RunDir(config.output)
    shown = remote.url if remote else run.path
    with run.locked():
        if remote is not None:
            remote.clear() if config.overwrite else remote.fetch(run.path)
        started = run.open(
            {**identity, "hash": config_hash(identity)}, overwrite=config.overwrite, ignored_options=not_identity
        )
        shards = [
            loaded.rows[start : start + config.shard_size] for start in range(0, len(loaded.rows), config.shard_size)
        ]
        done = run.completed_shards([[row["id"] for row in shard] for shard in shards], DISTILLED_SCHEMA)
        pending = [index for index in range(len(shards)) if index not in done]
        finished = None if pending else run.finished_stats()
        if finished is not None:  # nothing left to do: the outputs and their stats stay as the run wrote them
            if show_progress:
                print_summary(finished, shown)
            return DistillResult(run.path, finished)
        report = ExecutionReport()
        if pending:
            executor = EXECUTORS.get(config.executor)
            try:
                report = executor(
                    run, [(index, shards[index]) for index in pending], teacher.path, template, config, show_progress
                )
            except SddError:
                if started:  # a teacher that fails to load leaves no output folder behind
                    run.take_back_start()
                raise

        table, invalid = run.read_shards(len(shards)), _invalid_table(loaded)
        stats = distill_stats(
            table=table,
            invalid=invalid,
            config=flat_config,
            template=template.to_dict(),
            teacher=teacher,
            engine=report.engine,
            source=loaded,
            work={
                "generated_rows": report.generated_rows,
                "generated_tokens": report.generated_tokens,
                "resumed_shards": len(shards) - len(pending),
                "seconds": report.seconds,
            },
            version=__version__,
        )
        _write_outputs(run, table, invalid, stats)
        if remote is not None:
            remote.put_outputs(run.path)
    if show_progress:
        print_summary(stats, shown)
    return DistillResult(run.path, stats)


def compact_outputs(table: pa.Table, invalid: pa.Table) -> tuple[pa.Table, pa.Table]:
    """Both tables without the columns nothing filled: the tool fields of `messages` when no turn has one, and
    the conversation and reasoning columns of single-turn data from a teacher that does not think."""
    both = pa.concat_tables([table, invalid])
    keep = [
        name for name in both.column_names if name not in OPTIONAL_COLUMNS or both.column(name).null_count < len(both)
    ]
    messages = pc.list_flatten(both.column("messages"))
    if all(pc.struct_field(messages, key).null_count == len(messages) for key in MESSAGE_KEYS[2:]):
        position = DISTILLED_SCHEMA.get_field_index("messages")
        schema = DISTILLED_SCHEMA.set(position, pa.field("messages", pa.list_(MESSAGE)))
        table, invalid = table.cast(schema), invalid.cast(schema)
    return table.select(keep), invalid.select(keep)


def _write_outputs(run: RunDir, table: pa.Table, invalid: pa.Table, stats: dict) -> None:
    """The kept rows as a `datasets` folder and Parquet, dropped rows apart, then the stats (written last).

    The stats file marks a finished run, so it goes first: a run killed in here is never taken for finished.
    """
    import datasets

    ids = table.column("id")
    if len(pc.unique(ids)) != len(ids):
        raise SddError(f"{run.path}: duplicated row ids in the shards; rerun with --overwrite")
    table, invalid = compact_outputs(table, invalid)
    is_dropped = pc.equal(table.column("decision"), "dropped")
    kept = table.filter(pc.invert(is_dropped))
    dropped = pa.concat_tables([table.filter(is_dropped), invalid])
    run.unmark_finished()
    write_atomically(run.path / DISTILLED_PARQUET, lambda target: pq.write_table(kept, target))
    write_atomically(run.path / DROPPED_PARQUET, lambda target: pq.write_table(dropped, target))
    run.remove_leftovers()
    staging = run.path / f".{DATA_DIR}.tmp-{os.getpid()}"
    datasets.Dataset(kept).save_to_disk(str(staging))
    run.replace_data_dir(staging)
    write_json(run.path / STATS_FILE, stats)
