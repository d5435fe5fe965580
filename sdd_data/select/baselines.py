"""Baseline selectors: take the first `budget` rows of one fixed preference order, no clustering."""

from __future__ import annotations

import numpy as np

from sdd_data.select.config import SelectConfig
from sdd_data.select.rank import instruction_efficiency
from sdd_data.select.selection import SelectionInputs, SelectionResult


def ordered_selection(method: str, inputs: SelectionInputs, budget: int, order: np.ndarray) -> SelectionResult:
    """Select the first `budget` rows of `order`; rank is the place in `order`."""
    n_rows = len(order)
    rank = np.empty(n_rows, dtype=np.int64)
    rank[order] = np.arange(1, n_rows + 1)
    selected = rank <= budget
    return SelectionResult(
        method=method,
        budget=budget,
        selected=selected,
        cluster=np.full(n_rows, -1, dtype=np.int64),
        degradation=inputs.degradation,
        ies=instruction_efficiency(inputs.degradation, inputs.prompt_tokens, inputs.response_tokens),
        rank=rank,
        reason=["selected" if keep else "budget_exhausted" for keep in selected],
        report={"method": method, "rows": n_rows, "budget": budget, "selected": int(selected.sum())},
    )


def _descending(values: np.ndarray) -> np.ndarray:
    """Indices by value, highest first; ties keep row order."""
    return np.argsort(-values, kind="stable")


def random_selection(inputs: SelectionInputs, config: SelectConfig, budget: int) -> SelectionResult:
    """A seeded random sample."""
    order = np.random.default_rng(config.seed).permutation(len(inputs.degradation))
    return ordered_selection("random", inputs, budget, order)


def longest_selection(inputs: SelectionInputs, config: SelectConfig, budget: int) -> SelectionResult:
    """The rows with the most response tokens."""
    return ordered_selection("longest", inputs, budget, _descending(inputs.response_tokens))


def degradation_selection(inputs: SelectionInputs, config: SelectConfig, budget: int) -> SelectionResult:
    """The rows with the highest degradation score."""
    return ordered_selection("degradation", inputs, budget, _descending(inputs.degradation))
