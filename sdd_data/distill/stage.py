"""The distill stage: the teacher rewrites every response, the consistency filter keeps or rejects it.

Rows are cut into fixed shards; each shard is generated, judged and written atomically, so a rerun
of the same command after a crash finishes the job with no row lost or duplicated.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from sdd_data import __version__
from sdd_data.artifacts import DATA_DIR, DISTILLED_PARQUET, DROPPED_PARQUET, STATS_FILE
from sdd_data.config import config_hash, config_to_flat_dict
from sdd_data.data.decontaminate import build_index, row_text, split_paths
from sdd_data.data.records import sft_messages
from sdd_data.data.sources import LoadedSource, load_rows
from sdd_data.distill.config import DistillConfig
from sdd_data.distill.consistency import FAILURE_DECISIONS, FilterConfig, decide
from sdd_data.distill.prompt_length import PROMPT_TOO_LONG, PROMPT_TRUNCATED, FittedPrompt, fit_prompt
from sdd_data.distill.run_dir import RunDir
from sdd_data.distill.stats import distill_stats, print_summary
from sdd_data.distill.templates import Template, get_template
from sdd_data.engines import ENGINES, load_engine
from sdd_data.engines.base import Engine
from sdd_data.errors import SddError
from sdd_data.models.resolve import resolve_model
from sdd_data.output_folder import write_atomically, write_json

MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string())])
DISTILLED_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("source", pa.string()),
        ("instruction", pa.string()),
        ("input", pa.string()),
        ("response", pa.string()),
        ("reference_answer", pa.string()),
        ("task", pa.string()),
        ("meta", pa.string()),
        ("messages", pa.list_(MESSAGE)),
        ("teacher_response", pa.string()),
        ("decision", pa.string()),
        ("reason", pa.string()),
        ("extracted_answer", pa.string()),
        ("finish_reason", pa.string()),
        ("prompt_tokens", pa.int64()),
        ("teacher_tokens", pa.int64()),
    ]
)


NEWER_OPTIONS = {"truncate_long_prompts": False}
"""Options added after run folders existed, with their defaults: left at the default they are no part of a
run's identity, so a run begun by an earlier version still resumes."""
_UNSET = object()


@dataclass
class DistillResult:
    """Where the results are and what the run counted."""

    output: Path
    stats: dict


def row_seed(base_seed: int, identifier: str) -> int:
    """A per-row sampling seed that depends only on the base seed and the row id."""
    return int(hashlib.sha256(f"{base_seed}:{identifier}".encode()).hexdigest()[:8], 16)


def _validate(config: DistillConfig) -> None:
    if config.engine not in ENGINES:
        raise SddError(f"unknown engine {config.engine!r}; known: {', '.join(ENGINES.names())}")
    if config.shard_size <= 0:
        raise SddError(f"shard_size must be positive, got {config.shard_size}")
    if config.decoding.max_new_tokens <= 0:
        raise SddError(f"max_new_tokens must be positive, got {config.decoding.max_new_tokens}")


def judge_rows(
    rows: list[dict], texts: list[str], finish_reasons: list[str], filter_config: FilterConfig
) -> list[dict]:
    """Apply the consistency filter to each rewrite and build the distilled rows."""
    distilled = []
    for row, text, finish_reason in zip(rows, texts, finish_reasons):
        verdict = decide(row, text, finish_reason, filter_config)
        final = text if verdict.decision == "rewrite" else row["response"]
        distilled.append(
            {
                **row,
                "messages": None if verdict.decision == "dropped" else sft_messages(row, final),
                "teacher_response": text,
                "decision": verdict.decision,
                "reason": verdict.reason,
                "extracted_answer": verdict.extracted_answer,
                "finish_reason": finish_reason,
            }
        )
    return distilled


def _distill_shard(rows: list[dict], engine: Engine, template: Template, config: DistillConfig, progress) -> pa.Table:
    """Generate and judge one shard; rows whose prompt does not fit the teacher's context are not generated."""
    context_length = getattr(engine, "context_length", None)
    fitted = [
        fit_prompt(
            row,
            template,
            engine.tokenizer,
            context_length,
            config.decoding.max_new_tokens,
            config.truncate_long_prompts,
        )
        for row in rows
    ]
    todo = [index for index, prompt in enumerate(fitted) if prompt.text is not None]
    if len(todo) < len(rows):
        progress(len(rows) - len(todo))
    generations = []
    if todo:
        prompts = [fitted[index].text for index in todo]
        seeds = [row_seed(config.decoding.seed, rows[index]["id"]) for index in todo]
        generations = engine.generate(prompts, seeds, config.decoding, progress)  # type: ignore[arg-type]
    judged = judge_rows(
        [rows[index] for index in todo],
        [generation.text.strip() for generation in generations],
        [generation.finish_reason for generation in generations],
        config.filter,
    )
    distilled = [_too_long_row(row, prompt, config) for row, prompt in zip(rows, fitted)]
    for index, row, generation in zip(todo, judged, generations):
        row["prompt_tokens"] = generation.prompt_tokens
        row["teacher_tokens"] = generation.completion_tokens
        if fitted[index].truncated and row["decision"] == "rewrite":
            row["reason"] = PROMPT_TRUNCATED
        distilled[index] = row
    return pa.Table.from_pylist(distilled, schema=DISTILLED_SCHEMA)


def _too_long_row(row: dict, prompt: FittedPrompt, config: DistillConfig) -> dict:
    """A row whose prompt leaves no room in the teacher's context: the filter's failure decision, not generated."""
    decision = FAILURE_DECISIONS[config.filter.on_failure]
    return {
        **row,
        "messages": None if decision == "dropped" else sft_messages(row, row["response"]),
        "decision": decision,
        "reason": PROMPT_TOO_LONG,
        "prompt_tokens": prompt.tokens,
        "teacher_tokens": 0,
    }


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
    _validate(config)
    loaded = set_aside_contaminated(load_rows(config.source, strict=config.strict), config)
    template = get_template(config.template, {row["task"] for row in loaded.rows})
    teacher = resolve_model(config.teacher, revision=config.revision)
    flat_config = config_to_flat_dict(config)
    identity = {
        "config": {
            key: value
            for key, value in flat_config.items()
            if key not in ("output", "overwrite") and NEWER_OPTIONS.get(key, _UNSET) != value
        },
        "source_fingerprint": loaded.fingerprint,
        "template": template.to_dict(),
        "rows": len(loaded.rows),
    }
    run = RunDir(config.output)
    with run.locked():
        started = run.open({**identity, "hash": config_hash(identity)}, overwrite=config.overwrite)
        shards = [
            loaded.rows[start : start + config.shard_size] for start in range(0, len(loaded.rows), config.shard_size)
        ]
        done = run.completed_shards([[row["id"] for row in shard] for shard in shards], DISTILLED_SCHEMA)
        pending = [index for index in range(len(shards)) if index not in done]
        finished = None if pending else run.finished_stats()
        if finished is not None:  # nothing left to do: the outputs and their stats stay as the run wrote them
            if show_progress:
                print_summary(finished, run.path)
            return DistillResult(run.path, finished)
        engine_info, generated_rows, generated_tokens, started = {}, 0, 0, time.perf_counter()
        if pending:
            try:
                engine = load_engine(config.engine, teacher.path, config.engine_options)
            except SddError:
                if started:  # a bad teacher leaves no output folder behind
                    run.take_back_start()
                raise
            engine_info = engine.describe()
            started = time.perf_counter()
            with tqdm(
                total=sum(len(shards[i]) for i in pending), unit="row", desc="distill", disable=not show_progress
            ) as bar:
                for index in pending:
                    shard = _distill_shard(shards[index], engine, template, config, bar.update)
                    run.write_shard(index, shard)
                    generated_rows += len(shard)
                    generated_tokens += pc.sum(shard.column("teacher_tokens")).as_py() or 0
            engine.close()
        seconds = time.perf_counter() - started

        table, invalid = run.read_shards(len(shards)), _invalid_table(loaded)
        stats = distill_stats(
            table=table,
            invalid=invalid,
            config=flat_config,
            template=template.to_dict(),
            teacher=teacher,
            engine=engine_info,
            source=loaded,
            work={
                "generated_rows": generated_rows,
                "generated_tokens": generated_tokens,
                "resumed_shards": len(shards) - len(pending),
                "seconds": seconds,
            },
            version=__version__,
        )
        _write_outputs(run, table, invalid, stats)
    if show_progress:
        print_summary(stats, run.path)
    return DistillResult(run.path, stats)


def _write_outputs(run: RunDir, table: pa.Table, invalid: pa.Table, stats: dict) -> None:
    """The kept rows as a `datasets` folder and Parquet, dropped rows apart, then the stats (written last).

    The stats file marks a finished run, so it goes first: a run killed in here is never taken for finished.
    """
    import datasets

    ids = table.column("id")
    if len(pc.unique(ids)) != len(ids):
        raise SddError(f"{run.path}: duplicated row ids in the shards; rerun with --overwrite")
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
