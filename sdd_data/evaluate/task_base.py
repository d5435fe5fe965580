"""What every evaluation task shares: its settings, the model under evaluation, the result and the protocol."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from sdd_data.errors import SddError


@dataclass(frozen=True)
class TaskSettings:
    """How every task runs: the shared subset size, seed, batching and decoding."""

    limit: int | None = 200
    seed: int = 0
    batch_size: int = 8
    max_new_tokens: int = 256
    dtype: str = "auto"
    device: str = "auto"
    trust_remote_code: bool = False
    mc_delimiter: str = "\nAnswer: "


@dataclass
class EvalModel:
    """A model under evaluation: its name in the table, its checkpoint, and its loaded engine (if any)."""

    name: str
    path: str
    engine: object | None = None
    """A TransformersEngine, or None for tasks that load the checkpoint themselves (lm-eval)."""


@dataclass
class TaskResult:
    """One model's result on one task: the headline metric and every metric computed."""

    task: str
    metric: str
    score: float
    rows: int | None
    """Rows scored (None when the task's runner does not say)."""
    metrics: dict[str, float] = field(default_factory=dict)
    higher_is_better: bool = True
    """False for scores like a negative log-likelihood: they stay out of the average and of retention."""
    item_scores: list[float] | None = None
    """The headline metric of every row, in row order (1/0 for accuracy), for paired comparisons across models;
    None when the task's runner does not give them."""


class EvalTask(Protocol):
    """A task: `label` names it in tables, `metric` is its headline metric."""

    label: str
    metric: str
    loads_own_model: bool
    """True when it loads the checkpoint itself (lm-eval): the stage passes it no engine."""
    scores_loglikelihoods: bool
    """True when it scores log-likelihoods through the engine (mc, nll), which only some engines can."""

    def prepare(self, settings: TaskSettings) -> None:
        """Read and check the data and choose the rows (before any model loads)."""
        ...

    def run(self, model: EvalModel, settings: TaskSettings) -> TaskResult:
        """Score one model."""
        ...


TaskFactory = Callable[[str | None], list[EvalTask]]
"""Builds a task list entry's tasks from its argument (the text after the first colon, or None)."""


def choose_rows(count: int, limit: int | None, seed: int) -> list[int]:
    """Indices of a seeded random subset of `limit` rows out of `count` (all rows when limit is None), in order."""
    if limit is not None and limit < 1:
        raise SddError(f"limit must be at least 1, got {limit}")
    if limit is None or limit >= count:
        return list(range(count))
    return sorted(random.Random(seed).sample(range(count), limit))
