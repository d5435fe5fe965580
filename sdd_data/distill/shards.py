"""From shards of rows to shards of distilled rows: prompts, generation, the filter, one Arrow table per shard.

Every executor goes through `distill_shards`, so a shard's table is the same whether it was made in the
local loop, by a data-parallel replica or by a Ray actor. An engine that can stream (`generate_stream`)
gets the rows of every shard as one continuous feed, so it never idles while the last long row of a shard
finishes; each shard is handed back as soon as its own rows are done.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cached_property

import pyarrow as pa

from sdd_data.data.records import sft_messages
from sdd_data.distill.config import DistillConfig
from sdd_data.distill.consistency import FAILURE_DECISIONS, FilterConfig, decide
from sdd_data.distill.prompt_length import PROMPT_TOO_LONG, PROMPT_TRUNCATED, FittedPrompt, fit_prompt
from sdd_data.distill.templates import Template
from sdd_data.engines.base import Engine, Generation

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

ENGINE_ERROR = "engine_error"
"""Reason of the rows of a shard whose generation failed twice (Ray executor): they take the failure decision."""


def row_seed(base_seed: int, identifier: str) -> int:
    """A per-row sampling seed that depends only on the base seed and the row id."""
    return int(hashlib.sha256(f"{base_seed}:{identifier}".encode()).hexdigest()[:8], 16)


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


@dataclass
class ShardWork:
    """One shard on its way through the teacher: its rows, their fitted prompts and the generations so far."""

    index: int
    rows: list[dict]
    prompts: list[FittedPrompt]
    generations: dict[int, Generation] = field(default_factory=dict)

    @cached_property
    def todo(self) -> list[int]:
        """Positions of the rows whose prompt fits the teacher's context (the others are not generated)."""
        return [position for position, prompt in enumerate(self.prompts) if prompt.text is not None]

    @property
    def done(self) -> bool:
        return len(self.generations) == len(self.todo)


def prepare_shard(index: int, rows: list[dict], engine: Engine, template: Template, config: DistillConfig) -> ShardWork:
    """Render and fit every row's prompt against the teacher's context."""
    context_length = getattr(engine, "context_length", None)
    prompts = [
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
    return ShardWork(index, rows, prompts)


def shard_table(work: ShardWork, config: DistillConfig) -> pa.Table:
    """Judge a shard's generations and build its table, rows in their original order."""
    todo = work.todo
    generations = [work.generations[position] for position in todo]
    judged = judge_rows(
        [work.rows[position] for position in todo],
        [generation.text.strip() for generation in generations],
        [generation.finish_reason for generation in generations],
        config.filter,
    )
    distilled = [
        failed_row(row, prompt.tokens, PROMPT_TOO_LONG, config) for row, prompt in zip(work.rows, work.prompts)
    ]
    for position, row, generation in zip(todo, judged, generations):
        row["prompt_tokens"] = generation.prompt_tokens
        row["teacher_tokens"] = generation.completion_tokens
        if work.prompts[position].truncated and row["decision"] == "rewrite":
            row["reason"] = PROMPT_TRUNCATED
        distilled[position] = row
    return pa.Table.from_pylist(distilled, schema=DISTILLED_SCHEMA)


def failed_row(row: dict, prompt_tokens: int | None, reason: str, config: DistillConfig) -> dict:
    """A row the teacher did not rewrite (prompt too long, engine failure): the filter's failure decision."""
    decision = FAILURE_DECISIONS[config.filter.on_failure]
    return {
        **row,
        "messages": None if decision == "dropped" else sft_messages(row, row["response"]),
        "decision": decision,
        "reason": reason,
        "prompt_tokens": prompt_tokens,
        "teacher_tokens": 0,
    }


def failed_shard_table(rows: list[dict], reason: str, config: DistillConfig) -> pa.Table:
    """A whole shard of rows set aside with the same reason."""
    return pa.Table.from_pylist([failed_row(row, None, reason, config) for row in rows], schema=DISTILLED_SCHEMA)


def distill_shards(
    shards: list[tuple[int, list[dict]]],
    engine: Engine,
    template: Template,
    config: DistillConfig,
    progress: Callable[[int], None],
) -> Iterator[tuple[int, pa.Table]]:
    """Generate and judge shards of rows, yielding `(index, table)` for each shard as soon as it is done.

    Shards come back in the order they finish, which for a streaming engine need not be the order given.
    """
    if hasattr(engine, "generate_stream"):
        yield from _streamed(shards, engine, template, config, progress)
        return
    for index, rows in shards:
        work = prepare_shard(index, rows, engine, template, config)
        todo = work.todo
        progress(len(rows) - len(todo))
        if todo:
            prompts = [work.prompts[position].text for position in todo]
            seeds = [row_seed(config.decoding.seed, rows[position]["id"]) for position in todo]
            generated = engine.generate(prompts, seeds, config.decoding, progress)  # type: ignore[arg-type]
            work.generations = dict(zip(todo, generated))
        yield index, shard_table(work, config)


def _streamed(
    shards: list[tuple[int, list[dict]]],
    engine,
    template: Template,
    config: DistillConfig,
    progress: Callable[[int], None],
) -> Iterator[tuple[int, pa.Table]]:
    """One continuous feed of requests over all shards; a shard is judged once its last row is back."""
    works: dict[int, ShardWork] = {}
    ready: list[int] = []  # shards with nothing left to generate, not yet handed back

    def requests() -> Iterator[tuple[tuple[int, int], str, int]]:
        for index, rows in shards:
            work = works[index] = prepare_shard(index, rows, engine, template, config)
            todo = work.todo
            progress(len(rows) - len(todo))
            if not todo:
                ready.append(index)
            for position in todo:
                yield (
                    (index, position),
                    work.prompts[position].text,
                    row_seed(  # type: ignore[misc]
                        config.decoding.seed, rows[position]["id"]
                    ),
                )

    for (index, position), generation in engine.generate_stream(requests(), config.decoding):
        progress(1)
        work = works[index]
        work.generations[position] = generation
        if work.done:
            ready.append(index)
        while ready:
            finished = ready.pop(0)
            yield finished, shard_table(works.pop(finished), config)
    for finished in ready:
        yield finished, shard_table(works.pop(finished), config)
