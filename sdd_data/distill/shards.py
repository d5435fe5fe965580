"""From shards of rows to shards of distilled rows: prompts, generation, the filter, one Arrow table per shard.

A row is one unit of teacher work, a conversation one per assistant turn (`turns`); a shard always holds
whole conversations and its table one row per conversation.

Every executor goes through `distill_shards`, so a shard's table is the same whether it was made in the
local loop, by a data-parallel replica or by a Ray actor. An engine that can stream (`generate_stream`)
gets the rows of every shard as one continuous feed, so it never idles while the last long row of a shard
finishes; the retries of rejected rewrites (`--attempts`) join that feed as the rejections come, and each
shard is handed back as soon as its own rows are done.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace

import pyarrow as pa

from sdd_data.data.conversations import MESSAGE_KEYS
from sdd_data.distill.config import DistillConfig
from sdd_data.distill.consistency import FAILURE_DECISIONS, Decision, decide
from sdd_data.distill.prompt_length import PROMPT_TRUNCATED, FittedPrompt, fit_prompt
from sdd_data.distill.reasoning import opens_thinking, split_reasoning, stored_response
from sdd_data.distill.templates import Template
from sdd_data.distill.turns import TurnUnit, count_units, plan_units, row_record
from sdd_data.engines.base import Capability, DecodingConfig, Engine, EngineTraits, Generation, StreamRequest

MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string())])
TOOL_MESSAGE = pa.struct([(key, pa.string()) for key in MESSAGE_KEYS])
"""A chat turn with its tool fields; the outputs use it only when some turn has one (else `MESSAGE`)."""
TURN = pa.struct(
    [
        ("turn", pa.int64()),
        ("response", pa.string()),
        ("decision", pa.string()),
        ("reason", pa.string()),
        ("teacher_response", pa.string()),
        ("teacher_reasoning", pa.string()),
        ("extracted_answer", pa.string()),
        ("finish_reason", pa.string()),
        ("prompt_tokens", pa.int64()),
        ("teacher_tokens", pa.int64()),
        ("attempts", pa.int64()),
        ("attempt_tokens", pa.int64()),
    ]
)
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
        ("messages", pa.list_(TOOL_MESSAGE)),
        ("teacher_response", pa.string()),
        ("teacher_reasoning", pa.string()),
        ("decision", pa.string()),
        ("reason", pa.string()),
        ("extracted_answer", pa.string()),
        ("finish_reason", pa.string()),
        ("prompt_tokens", pa.int64()),
        ("teacher_tokens", pa.int64()),
        ("attempts", pa.int64()),
        ("attempt_tokens", pa.int64()),
        ("turns", pa.list_(TURN)),
        ("conversation", pa.string()),
    ]
)
"""The shards' schema. `turns` (one record per assistant turn: its place, its source text, what it kept and
why) and `conversation` (the source turns of a
dropped conversation, as JSON) are set for conversations only. `attempts` (generations made for the row or
turn) and `attempt_tokens` (their completion tokens, kept or not) are set only with `--attempts` above 1."""
OPTIONAL_COLUMNS = ("teacher_reasoning", "attempts", "attempt_tokens", "turns", "conversation")
"""Columns the outputs leave out when no row fills them."""

ENGINE_ERROR = "engine_error"
"""Reason of the rows of a shard whose generation failed twice (Ray executor): they take the failure decision."""
CHAT_TEMPLATE_ERROR = "chat_template_error"
"""Reason of a turn whose conversation the teacher's chat template cannot render (e.g. a tool turn)."""


def row_seed(base_seed: int, identifier: str) -> int:
    """A per-row sampling seed that depends only on the base seed and the row id (or row id and turn)."""
    return int(hashlib.sha256(f"{base_seed}:{identifier}".encode()).hexdigest()[:8], 16)


def judge_turn(row: dict, text: str, finish_reason: str, thinking_open: bool, config: DistillConfig) -> dict:
    """Apply the consistency filter to one rewrite's final answer (its thinking set apart) and say what it keeps."""
    split = split_reasoning(text, thinking_open)
    if split.unfinished:
        verdict = Decision(FAILURE_DECISIONS[config.filter.on_failure], "truncated")
    else:
        verdict = decide(row, split.answer, finish_reason, config.filter)
    stored, reasoning = stored_response(text, split, config.reasoning)
    return {
        "teacher_response": stored,
        "teacher_reasoning": reasoning,
        "decision": verdict.decision,
        "reason": verdict.reason,
        "extracted_answer": verdict.extracted_answer,
        "finish_reason": finish_reason,
        "final": stored if verdict.decision == "rewrite" else row["response"],
    }


def failed_turn(row: dict, prompt_tokens: int | None, reason: str, config: DistillConfig) -> dict:
    """A turn the teacher did not rewrite (prompt too long, engine failure): the filter's failure decision."""
    return {
        "teacher_response": None,
        "teacher_reasoning": None,
        "decision": FAILURE_DECISIONS[config.filter.on_failure],
        "reason": reason,
        "extracted_answer": None,
        "finish_reason": None,
        "prompt_tokens": prompt_tokens,
        "teacher_tokens": 0,
        "attempts": None,
        "attempt_tokens": None,
        "final": row["response"],
    }


@dataclass
class ShardWork:
    """One shard on its way through the teacher: its rows, the units of the current round with their fitted
    prompts and generations, and every turn judged so far."""

    index: int
    rows: list[dict]
    units: list[TurnUnit] = field(default_factory=list)
    prompts: list[FittedPrompt] = field(default_factory=list)
    generations: dict[int, Generation] = field(default_factory=dict)
    judged: dict[tuple[int, int | None], dict] = field(default_factory=dict)
    attempts: dict[int, int] = field(default_factory=dict)
    """Generations made so far for each unit of the round (by position)."""
    attempt_tokens: dict[int, int] = field(default_factory=dict)
    """Completion tokens of those generations, kept or not."""

    @property
    def todo(self) -> list[int]:
        """Positions of the units whose prompt fits the teacher's context (the others are not generated)."""
        return [position for position, prompt in enumerate(self.prompts) if prompt.text is not None]

    def finals(self) -> dict[tuple[int, int | None], str]:
        """The decided text of every turn judged so far (what a `rewritten` turn context shows)."""
        return {key: verdict["final"] for key, verdict in self.judged.items()}


def _fit(unit: TurnUnit, engine: Engine, template: Template, config: DistillConfig) -> FittedPrompt:
    try:
        return fit_prompt(
            unit.row,
            template,
            engine.tokenizer,
            getattr(engine, "context_length", None),
            config.decoding.max_new_tokens,
            config.truncate_long_prompts,
        )
    except Exception:  # noqa: BLE001 -- a chat template refuses a conversation with many exception types
        if unit.turn is None:
            raise
        return FittedPrompt(None, None, failure=CHAT_TEMPLATE_ERROR)


def prepare_round(
    work: ShardWork, depth: int | None, engine: Engine, template: Template, config: DistillConfig
) -> None:
    """Plan a round's units (all of them, or the `depth`-th turn of each conversation) and fit their prompts."""
    work.units = plan_units(work.rows, depth, work.finals())
    work.prompts = [_fit(unit, engine, template, config) for unit in work.units]
    work.generations, work.attempts, work.attempt_tokens = {}, {}, {}


def set_aside_unsent(work: ShardWork, config: DistillConfig) -> None:
    """Set aside the round's units whose prompt was not sent (too long, refused by the chat template)."""
    for unit, prompt in zip(work.units, work.prompts):
        if prompt.text is None:
            work.judged[unit.key] = failed_turn(unit.row, prompt.tokens, prompt.failure, config)


def judge_round(work: ShardWork, config: DistillConfig) -> None:
    """Judge the round's generations (their first attempt), and set aside the units whose prompt was not sent."""
    set_aside_unsent(work, config)
    for position, generation in list(work.generations.items()):
        _judge_attempt(work, position, generation, config)


def _judge_attempt(work: ShardWork, position: int, generation: Generation, config: DistillConfig) -> None:
    """Count one more generation of a unit and judge it; what it keeps replaces the unit's earlier verdict."""
    unit, prompt = work.units[position], work.prompts[position]
    work.generations[position] = generation
    work.attempts[position] = work.attempts.get(position, 0) + 1
    work.attempt_tokens[position] = work.attempt_tokens.get(position, 0) + generation.completion_tokens
    verdict = judge_turn(
        unit.row, generation.text.strip(), generation.finish_reason, opens_thinking(prompt.text or ""), config
    )
    verdict["prompt_tokens"] = generation.prompt_tokens
    verdict["teacher_tokens"] = generation.completion_tokens
    if prompt.truncated and verdict["decision"] == "rewrite":
        verdict["reason"] = PROMPT_TRUNCATED
    several = config.attempts > 1
    verdict["attempts"] = work.attempts[position] if several else None
    verdict["attempt_tokens"] = work.attempt_tokens[position] if several else None
    work.judged[unit.key] = verdict


def retry_seed(work: ShardWork, position: int, config: DistillConfig) -> int | None:
    """The seed of the unit's next attempt, when the filter rejected its rewrite and it has attempts left; else
    None. Attempt k > 1 of a unit samples with the seed of its id and k, whatever else is retried with it."""
    unit, made = work.units[position], work.attempts.get(position, 0)
    if not made or made >= config.attempts or work.judged[unit.key]["decision"] == "rewrite":
        return None
    return row_seed(config.decoding.seed, f"{unit.seed_key}#attempt{made + 1}")


def retry_decoding(config: DistillConfig) -> DecodingConfig:
    """How every attempt after the first decodes: sampling at the retry temperature."""
    return replace(config.decoding, temperature=config.retry_temperature)


def retry_rejected(work: ShardWork, engine: Engine, config: DistillConfig) -> None:
    """Sample the rejected rewrites of the round again at the retry temperature until each passes the filter or
    has used its attempts; the first that passes is kept. Retries do not move the progress bar."""
    while True:
        seeds_by_position = {position: retry_seed(work, position, config) for position in work.todo}
        retries = [(position, seed) for position, seed in seeds_by_position.items() if seed is not None]
        if not retries:
            return
        prompts = [work.prompts[position].text for position, _ in retries]
        seeds = [seed for _, seed in retries]
        generated = engine.generate(prompts, seeds, retry_decoding(config), lambda _: None)  # type: ignore[arg-type]
        for (position, _), generation in zip(retries, generated):
            _judge_attempt(work, position, generation, config)


def shard_table(work: ShardWork) -> pa.Table:
    """The shard's distilled rows, in their original order, from every judged turn."""
    rows = [row_record(row, work.judged, position) for position, row in enumerate(work.rows)]
    return pa.Table.from_pylist(rows, schema=DISTILLED_SCHEMA)


def failed_shard_table(rows: list[dict], reason: str, config: DistillConfig) -> pa.Table:
    """A whole shard of rows set aside with the same reason."""
    work = ShardWork(-1, rows)
    for unit in plan_units(rows, None, {}):
        work.judged[unit.key] = failed_turn(unit.row, None, reason, config)
    return shard_table(work)


def _rounds(rows: list[dict], config: DistillConfig) -> list[int | None]:
    """One round of every unit, or (for a `rewritten` turn context) one round per turn depth."""
    if config.turn_context == "original":
        return [None]
    return list(range(max(count_units(row) for row in rows) if rows else 0))


def distill_shards(
    shards: list[tuple[int, list[dict]]],
    engine: Engine,
    template: Template,
    config: DistillConfig,
    progress: Callable[[int], None],
) -> Iterator[tuple[int, pa.Table]]:
    """Generate and judge shards of rows, yielding `(index, table)` for each shard as soon as it is done.

    Progress counts units (teacher requests). Shards come back in the order they finish, which for a
    streaming engine need not be the order given.
    """
    if EngineTraits.of(type(engine)).can(Capability.STREAM) and config.turn_context == "original":
        yield from _streamed(shards, engine, template, config, progress)
        return
    for index, rows in shards:
        work = ShardWork(index, rows)
        for depth in _rounds(rows, config):
            prepare_round(work, depth, engine, template, config)
            todo = work.todo
            progress(len(work.units) - len(todo))
            if todo:
                prompts = [work.prompts[position].text for position in todo]
                seeds = [row_seed(config.decoding.seed, work.units[position].seed_key) for position in todo]
                generated = engine.generate(prompts, seeds, config.decoding, progress)  # type: ignore[arg-type]
                work.generations = dict(zip(todo, generated))
            judge_round(work, config)
            retry_rejected(work, engine, config)
        yield index, shard_table(work)


class _Feed:
    """A streaming engine's requests: every shard's first attempts, with the retries of rejected rewrites put
    ahead of them as they come. It may run dry and yield again later: the engine reads it whenever it has room."""

    def __init__(self, first_attempts: Iterator[StreamRequest]):
        self.first_attempts = first_attempts
        self.retries: deque[StreamRequest] = deque()

    def __iter__(self) -> _Feed:
        return self

    def __next__(self) -> StreamRequest:
        if self.retries:
            return self.retries.popleft()
        return next(self.first_attempts)


def _streamed(
    shards: list[tuple[int, list[dict]]],
    engine,
    template: Template,
    config: DistillConfig,
    progress: Callable[[int], None],
) -> Iterator[tuple[int, pa.Table]]:
    """One continuous feed of requests over all shards, retries included; each unit is judged as it comes back,
    and a shard is handed back once none of its units waits for a generation."""
    works: dict[int, ShardWork] = {}
    waiting: dict[int, int] = {}  # shard -> its requests in the feed or the engine
    finished: list[int] = []

    def first_attempts() -> Iterator[StreamRequest]:
        for index, rows in shards:
            work = works[index] = ShardWork(index, rows)
            prepare_round(work, None, engine, template, config)
            todo = work.todo
            set_aside_unsent(work, config)
            progress(len(work.units) - len(todo))
            waiting[index] = len(todo)
            if not todo:
                finished.append(index)
            for position in todo:
                seed = row_seed(config.decoding.seed, work.units[position].seed_key)
                yield (index, position), work.prompts[position].text, seed, config.decoding  # type: ignore[misc]

    feed = _Feed(first_attempts())
    for (index, position), generation in engine.generate_stream(feed):
        work = works[index]
        if position not in work.attempts:
            progress(1)
        _judge_attempt(work, position, generation, config)
        seed = retry_seed(work, position, config)
        if seed is not None:
            feed.retries.append(((index, position), work.prompts[position].text, seed, retry_decoding(config)))  # type: ignore[arg-type]
        else:
            waiting[index] -= 1
            if not waiting[index]:
                finished.append(index)
        while finished:
            done = works.pop(finished.pop(0))
            yield done.index, shard_table(done)
    for index in finished:
        yield index, shard_table(works.pop(index))
